"""Properties of the scanner on generated text, the bound, pass-through, and the registry."""
from __future__ import annotations

import json
from types import ModuleType

from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.completion import TextDelta, ToolCallDelta
from proxy.toolcalls import ToolCallScanner, extract
from proxy.toolcalls import registry, scanner as scanner_module

TOOLS = [{"type": "function", "function": {"name": n, "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}, "n": {"type": "integer"}}}}}
    for n in ("Bash", "Read", "get_weather")]

# Pieces of model output that stress the scanner: every marker, halves of calls, fences, prose.
FRAGMENTS = sorted({
    *scanner_module.GROUPS, *(g.end for g in scanner_module.GROUPS.values() if g.end),
    *(z for pair in registry.REASONING_ZONES for z in pair),
    "\n", "\n\n", " ", "  ", "`", "```", "```json\n", "\n```", "{", "}", "[", "]", "(", ")", '"',
    "Read", "Bash(", "Read(", "[Read(", "get_weather", ":", ",", "hello ", "The Bash tool ",
    '{"name": "Bash", "arguments": {"command": "ls"}}', '{"name": "Read", "parameters": {}}',
    '{"command": "ls -la"}', '[{"name": "Bash", "arguments": {"command": "x"}}]',
    "<function=Bash>", "<parameter=command>\necho hi\n</parameter>", "</function>",
    "Bash[ARGS]", '(command="ls")', "call:Bash{command:<escape>ls<escape>}", "\t",
    "```tool_code\n", 'Bash(command="ls")', "</think>",
})


def run(text: str, pieces: list[str], reason: str = "stop"):
    scanner = ToolCallScanner(TOOLS, lambda: "id")
    events = []
    for piece in pieces:
        events += scanner.feed(piece)
    tail, final_reason = scanner.finish(reason)
    events += tail
    assert all(isinstance(e, (TextDelta, ToolCallDelta)) for e in events)
    assert all(e.text for e in events if isinstance(e, TextDelta))
    content = "".join(e.text for e in events if isinstance(e, TextDelta)) or None
    calls = [(e.call.name, e.call.arguments) for e in events if isinstance(e, ToolCallDelta)]
    return content, calls, final_reason


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=14), data=st.data(),
       reason=st.sampled_from(["stop", "length"]))
def test_any_chunking_gives_the_whole_text_result(parts, data, reason):
    text = "".join(parts)
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12).map(sorted))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    whole = run(text, [text], reason)
    assert run(text, pieces, reason) == whole
    assert run(text, list(text), reason) == whole
    content, calls, final_reason = whole
    if not calls:  # nothing extracted: the text comes back exactly, never dropped
        assert content == (text or None) and final_reason == reason
    for _, arguments in calls:
        assert isinstance(json.loads(arguments), dict)


def test_extract_matches_the_scanner_and_ids_are_fresh():
    text = 'Ok.\n<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    content, calls, reason = extract(text, TOOLS, "stop")
    assert content == "Ok." and reason == "tool_calls"
    assert calls[0].id.startswith("call_") and calls[0].id != extract(text, TOOLS, "stop")[1][0].id


def test_without_tools_text_passes_straight_through():
    s = ToolCallScanner(None)
    text = '<tool_call>{"name": "Bash", "arguments": {}}</tool_call>'
    assert s.feed(text) == [TextDelta(text)] and s.feed("") == []
    assert s.finish("stop") == ([], "stop")
    assert extract("", [], "stop") == (None, [], "stop")


def test_prose_is_passed_on_at_once_except_a_possible_marker():
    s = ToolCallScanner(TOOLS)
    assert s.feed("Hello there, friend") == [TextDelta("Hello there, friend")]
    assert s.feed(" <tool_ca") == []  # trailing space and a marker's start are held
    events = s.feed('ll>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call> more')
    assert [type(e) for e in events] == [ToolCallDelta, TextDelta]
    assert events[1] == TextDelta(" more")  # the prose on both sides still reads "friend more"


def test_each_call_arrives_whole_with_index_id_and_name():
    s = ToolCallScanner(TOOLS, iter(["a", "b"]).__next__)
    events = s.feed('<tool_call>{"name": "Bash", "arguments": {"command": "1"}}</tool_call>'
                    '<tool_call>{"name": "Read", "arguments": {}}</tool_call>')
    assert [(e.index, e.call.id, e.call.name, e.call.arguments) for e in events] == [
        (0, "a", "Bash", '{"command":"1"}'), (1, "b", "Read", "{}")]
    assert s.finish("stop") == ([], "tool_calls")


def test_a_call_longer_than_the_bound_is_text_in_both_modes():
    big = '<tool_call>{"name": "Bash", "arguments": {"command": "' + "x" * 500 + '"}}</tool_call>'
    scanner = ToolCallScanner(TOOLS, max_held_chars=100)
    streamed = [e for i in range(0, len(big), 7) for e in scanner.feed(big[i:i + 7])]
    streamed += scanner.finish("stop")[0]
    assert all(isinstance(e, TextDelta) for e in streamed)
    assert "".join(e.text for e in streamed) == big
    small = ToolCallScanner(TOOLS, max_held_chars=1000)
    assert isinstance(small.feed(big)[0], ToolCallDelta)


def test_held_text_is_bounded_while_streaming():
    scanner = ToolCallScanner(TOOLS, max_held_chars=64)
    out = []
    for _ in range(50):
        out += scanner.feed('{"name": "Bash", "arguments": {"command": "' if not out else "yyyy")
    assert len(scanner._buf) <= 64 + 8  # noqa: SLF001 - the bound is the point of this test
    assert out and all(isinstance(e, TextDelta) for e in out)


def test_long_whitespace_runs_are_not_held_for_ever():
    scanner = ToolCallScanner(TOOLS, max_held_chars=10)
    events = scanner.feed("a" + " " * 30)
    assert "".join(e.text for e in events) == "a" + " " * 30


def test_finish_reasons():
    call = '<tool_call>{"name": "Bash", "arguments": {}}</tool_call>'
    assert extract(call, TOOLS, "stop")[2] == "tool_calls"
    assert extract(call, TOOLS, "length")[2] == "length"
    assert extract("hi", TOOLS, "stop")[2] == "stop"


def test_every_format_module_exposes_the_same_names():
    for fmt in registry.MARKER_FORMATS:
        assert isinstance(fmt, ModuleType) and isinstance(fmt.START, str) and callable(fmt.parse)
        assert fmt.END is None and callable(fmt.measure) or isinstance(fmt.END, str)
    for fmt in registry.TAIL_FORMATS:
        assert callable(fmt.viable) and callable(fmt.parse)


def test_no_trigger_is_a_prefix_of_another():
    triggers = [*scanner_module.GROUPS, *(z for z, _ in registry.REASONING_ZONES)]
    for a in triggers:
        for b in triggers:
            assert a == b or not b.startswith(a), (a, b)
