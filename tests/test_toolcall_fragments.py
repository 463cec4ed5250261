"""Structured tool calls streamed in fragments, as OpenAI-compatible servers send them, put back
together by the assembler (pure). Shapes from OpenAI's streaming reference (a first delta with
index/id/type/name, then argument fragments by index), llama-cpp-python (id, type and name
repeated in every fragment) and mlx_lm.server (each call whole, index counting up)."""
from __future__ import annotations

import json

import pytest

from tests.test_assemble import TOOLS, chunk, run

WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}},
           {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]


def frag(index, args=None, name=None, call_id=None, kind=None):
    d: dict = {"index": index}
    if call_id is not None:
        d["id"] = call_id
    if kind is not None:
        d["type"] = kind
    fn = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    d["function"] = fn
    return d


def pieces(text, n=3):
    return [text[i:i + n] for i in range(0, len(text), n)]


ARGS = '{"city": "Paris", "unit": "celsius"}'


def openai_style(args=ARGS, first=""):
    """First delta with the name and empty (or partial) arguments, then the rest in fragments."""
    rest = args[len(first):]
    return [chunk({"tool_calls": [frag(0, first, "get_weather", "call_1", "function")]})] + [
        chunk({"tool_calls": [frag(0, p)]}) for p in pieces(rest)]


CASES = {
    "openai, empty first arguments": openai_style(),
    "openai, partial first arguments": openai_style(first='{"city": '),
    "llama-cpp-python, everything repeated": [
        chunk({"tool_calls": [frag(0, p, "get_weather", "call_1", "function")]}) for p in [""] + pieces(ARGS)],
    "arguments before the name": [chunk({"tool_calls": [frag(0, p)]}) for p in pieces(ARGS)] + [
        chunk({"tool_calls": [frag(0, "", "get_weather", "call_1", "function")]})],
    "name in two pieces": [chunk({"tool_calls": [frag(0, "", "get_", "call_1", "function")]}),
                           chunk({"tool_calls": [frag(0, "", "weather")]})] + [
        chunk({"tool_calls": [frag(0, p)]}) for p in pieces(ARGS)],
    "arguments as an object": [chunk({"tool_calls": [frag(0, json.loads(ARGS), "get_weather", "call_1")]})],
    "mlx_lm.server, whole": [chunk({"tool_calls": [frag(0, ARGS, "get_weather", "call_1", "function")]})],
}


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("finish_with_last", [False, True], ids=["finish apart", "finish on the last chunk"])
def test_one_call_in_fragments_comes_out_whole(name, finish_with_last):
    chunks = list(CASES[name])
    if finish_with_last:  # the last fragment rides on the chunk that carries finish_reason
        chunks[-1]["choices"][0]["finish_reason"] = "tool_calls"
    else:
        chunks.append(chunk(finish="tool_calls"))
    events, c = run(chunks)
    assert c.content is None  # nothing of a structured call leaks into the text
    assert [(t.name, json.loads(t.arguments)) for t in c.tool_calls] == [("get_weather", json.loads(ARGS))]
    assert c.finish_reason == "tool_calls"


def test_interleaved_calls_keep_their_own_arguments_in_index_order():
    a, b = '{"city": "Oslo"}', '{"zone": "UTC"}'
    chunks = [chunk({"tool_calls": [frag(0, "", "get_weather", "call_a", "function")]}),
              chunk({"tool_calls": [frag(1, "", "get_time", "call_b", "function")]})]
    for pa, pb in zip(pieces(a, 4), pieces(b, 4)):
        chunks.append(chunk({"tool_calls": [frag(1, pb), frag(0, pa)]}))
    _, c = run(chunks + [chunk(finish="tool_calls")], tools=WEATHER)
    assert [(t.id, t.name, json.loads(t.arguments)) for t in c.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}), ("call_b", "get_time", {"zone": "UTC"})]


def test_mlx_whole_calls_counting_up_and_whole_calls_all_numbered_0():
    one, two = '{"city": "Paris"}', '{"city": "London"}'
    counting = [chunk({"tool_calls": [frag(0, one, "get_weather", "a", "function")]}),
                chunk({"tool_calls": [frag(1, two, "get_weather", "b", "function")]}), chunk(finish="tool_calls")]
    zeros = [chunk({"tool_calls": [frag(0, one, "get_weather", "a", "function")]}),
             chunk({"tool_calls": [frag(0, two, "get_weather", "a", "function")]}), chunk(finish="tool_calls")]
    for chunks in (counting, zeros):
        _, c = run(chunks)
        assert [json.loads(t.arguments) for t in c.tool_calls] == [{"city": "Paris"}, {"city": "London"}]
        assert len({t.id for t in c.tool_calls}) == 2


def test_a_call_whose_arguments_never_complete_is_text_not_a_wrong_call():
    chunks = [chunk({"tool_calls": [frag(0, '{"city": "Par', "get_weather", "c", "function")]}),
              chunk(finish="tool_calls")]
    _, c = run(chunks, tools=TOOLS)
    assert c.tool_calls == () and '{\\"city\\": \\"Par' in c.content and c.finish_reason == "stop"
