"""Pieces of the extractor on their own: upstream calls, schema-typed values, JSON status."""
from __future__ import annotations

import json

import pytest

from proxy.toolcalls import normalize_upstream_calls
from proxy.toolcalls import extract
from proxy.toolcalls.calls import COMPLETE, INCOMPLETE, INVALID, json_value_at, typed_value


def test_upstream_calls_get_string_ids_and_one_object_text():
    raw = [{"id": "abc", "type": "function", "index": 0,
            "function": {"name": "Read", "arguments": '{"file_path": "/a"}'}},
           {"function": {"name": "Bash", "arguments": {"command": "ls"}}}]
    calls, leftover = normalize_upstream_calls(raw, lambda: "new")
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("abc", "Read", {"file_path": "/a"}), ("new", "Bash", {"command": "ls"})]
    assert leftover == ""


def test_upstream_double_encoded_arguments_are_decoded_once():
    # mlx_lm.server json.dumps()es a parser's string arguments a second time
    inner = json.dumps({"command": "echo hi"})
    calls, _ = normalize_upstream_calls([{"id": 7, "function": {"name": "Bash", "arguments": json.dumps(inner)}}],
                                        lambda: "fresh")
    assert calls[0].id == "fresh" and json.loads(calls[0].arguments) == {"command": "echo hi"}


def test_upstream_calls_that_cannot_be_objects_come_back_as_text():
    bad = {"id": "x", "function": {"name": "Bash", "arguments": "[1, 2]"}}
    calls, leftover = normalize_upstream_calls([bad, {"function": {"arguments": "{}"}}], lambda: "n")
    assert calls == []
    assert '"Bash"' in leftover and leftover.count("\n") == 1


def test_upstream_empty_arguments_are_an_empty_object():
    calls, _ = normalize_upstream_calls([{"id": "a", "function": {"name": "Read", "arguments": ""}}])
    assert calls[0].arguments == "{}"


@pytest.mark.parametrize("raw, schema, value", [
    ("  indented\n\tcode  ", {"type": "string"}, "  indented\n\tcode  "),
    ("12", {"type": "string"}, "12"),
    ("12", {"type": "integer"}, 12),
    ("12", None, "12"),
    ("1.5", {"type": "number"}, 1.5),
    ("3", {"type": "number"}, 3),
    ("True", {"type": "boolean"}, True),
    ("no", {"type": "boolean"}, "no"),
    ('["a", 1]', {"type": "array"}, ["a", 1]),
    ("{'a': 1}", {"type": "object"}, {"a": 1}),
    ("null", {"type": ["string", "null"]}, None),
    ("null", {"type": "string"}, "null"),
    ("7", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, 7),
    ("x", {"type": "integer"}, "x"),
])
def test_xml_values_follow_the_declared_schema(raw, schema, value):
    assert typed_value(raw, schema) == value


@pytest.mark.parametrize("text, status", [
    ('{"a": 1}', COMPLETE), ('{"a": 1', INCOMPLETE), ('{"a": "unfinished', INCOMPLETE),
    ('{"a": tr', INCOMPLETE), ('{"a": "\\u12', INCOMPLETE), ("", INCOMPLETE),
    ("{oops this is prose}", INVALID), ('{"a": 1} trailing', COMPLETE), ("[1, 2, x, 4, 5, 6, 7]", INVALID),
])
def test_json_status(text, status):
    assert json_value_at(text, 0)[0] == status


def test_tools_in_responses_and_anthropic_shapes_are_declared_too():
    text = "<tool_call>\n<function=f>\n<parameter=n>\n5\n</parameter>\n</function>\n</tool_call>"
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    for tools in ([{"type": "function", "name": "f", "parameters": schema}], [{"name": "f", "input_schema": schema}]):
        assert [(c.name, c.arguments) for c in extract(text, tools, "stop")[1]] == [("f", '{"n":5}')]
    assert extract(text, [{"type": "function"}, "junk"], "stop")[1] == []
