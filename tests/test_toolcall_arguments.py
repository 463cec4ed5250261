"""The one rule for tool-call arguments (proxy/toolcalls/arguments.py), and that every source
of a call follows it: a model's text, the upstream's parser, a client's history (both protocols)."""
import pytest

from proxy.errors import ProxyError
from proxy.normalize.messages import history_arguments
from proxy.toolcalls.arguments import arguments_object, arguments_text, canonical_arguments
from proxy.toolcalls.extract import normalize_upstream_calls
from proxy.translate.messages_content import _tool_call

CANONICAL = '{"city":"Oslo","when":"Montag, 9 Uhr","n":[1,2]}'
OBJECT = {"city": "Oslo", "when": "Montag, 9 Uhr", "n": [1, 2]}


def test_the_canonical_text_is_compact_keeps_key_order_and_unicode():
    assert arguments_text(OBJECT) == CANONICAL
    assert arguments_text({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'
    assert arguments_text({"big": 2**70}) == '{"big":1180591620717411303424}'  # beyond orjson: exact
    assert arguments_text({"x": {1, 2}}) is None  # no JSON at all


@pytest.mark.parametrize("value, layers, expected", [
    (None, 1, {}), ("", 1, {}), ("  ", 1, {}), ({"a": 1}, 1, {"a": 1}), ('{"a": 1}', 1, {"a": 1}),
    ('"{\\"a\\": 1}"', 1, None),  # a string of a string, in a model's text: no call
    ('"{\\"a\\": 1}"', 2, {"a": 1}),  # ...from a source known to double-encode: undone
    ("[1]", 1, None), ("not json", 1, None), (3, 1, None), ("null", 1, None),
    ('{"code": "a\nb"}', 1, {"code": "a\nb"}),  # raw newlines in strings: read leniently
])
def test_what_counts_as_an_arguments_object(value, layers, expected):
    assert arguments_object(value, layers) == expected


def test_every_source_writes_the_same_text_for_the_same_arguments():
    spaced = '{"city": "Oslo", "when": "Montag, 9 Uhr", "n": [1, 2]}'  # as mlx_lm.server dumps it
    [upstream], _ = normalize_upstream_calls([{"id": "c", "type": "function",
                                               "function": {"name": "f", "arguments": spaced}}])
    history = history_arguments(spaced, "messages[1].tool_calls[0].function.arguments")
    anthropic = _tool_call({"type": "tool_use", "id": "t", "name": "f", "input": OBJECT}, "messages[1].content[0]")
    assert upstream.arguments == history == anthropic["function"]["arguments"] == canonical_arguments(OBJECT) == CANONICAL


def test_history_arguments_that_are_no_object_are_a_400_naming_the_field():
    with pytest.raises(ProxyError) as e:
        history_arguments("[1, 2]", "messages[1].tool_calls[0].function.arguments")
    assert e.value.status == 400 and e.value.param == "messages[1].tool_calls[0].function.arguments"
