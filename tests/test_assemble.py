"""Upstream chat chunks -> canonical events: numbering, ids, finish reasons (pure)."""
import itertools

import pytest

from proxy.completion import CompletionBuilder, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from proxy.errors import ProxyError
from proxy.generation.assemble import StreamAssembler

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def chunk(delta=None, finish=None, usage=None):
    out = {"choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if delta is not None or finish else []}
    if usage:
        out["usage"] = usage
    return out


def run(chunks, tools=TOOLS):
    ids = (f"id{i}" for i in itertools.count())
    asm = StreamAssembler(tools, new_id=lambda: next(ids))
    events = [ev for c in chunks for ev in asm.feed(c)] + asm.finish()
    b = CompletionBuilder()
    b.extend(events)
    return events, b.build()


def structured(name, args, call_id="call_x"):
    return {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": args}}


def test_text_calls_and_structured_calls_share_one_index_sequence_with_unique_ids():
    text_call = '<tool_call>{"name": "get_weather", "arguments": {"city": "Rome"}}</tool_call>'
    events, c = run([chunk({"content": text_call}),
                     chunk({"tool_calls": [structured("get_weather", '{"city": "Oslo"}', "dup"),
                                           structured("get_weather", '{"city": "Bern"}', "dup")]}),
                     chunk(finish="stop")])
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [e.index for e in calls] == [0, 1, 2]
    assert len({e.call.id for e in calls}) == 3
    assert c.finish_reason == "tool_calls" and c.content is None
    # one JSON rule for arguments, whoever wrote them: the model's text or the server's parser
    assert [e.call.arguments for e in calls] == ['{"city":"Rome"}', '{"city":"Oslo"}', '{"city":"Bern"}']


def test_double_encoded_structured_arguments_are_undone():
    _, c = run([chunk({"tool_calls": [structured("get_weather", '"{\\"city\\": \\"Paris\\"}"')]}), chunk(finish="tool_calls")])
    assert c.tool_calls[0].arguments == '{"city":"Paris"}'


def test_unusable_structured_call_is_kept_as_text_not_dropped():
    _, c = run([chunk({"tool_calls": [{"type": "function", "function": {"arguments": "{}"}}]}), chunk(finish="stop")])
    assert c.tool_calls == () and "arguments" in c.content


@pytest.mark.parametrize("upstream,has_call,expected", [
    ("tool_calls", False, "stop"),  # the stock server claims a call it dropped
    ("stop", True, "tool_calls"),
    ("length", True, "length"),
    ("length", False, "length"),
    ("stop", False, "stop"),
])
def test_finish_reason_follows_what_was_extracted(upstream, has_call, expected):
    text = '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>' if has_call else "plain"
    _, c = run([chunk({"content": text}), chunk(finish=upstream)])
    assert c.finish_reason == expected


def test_reasoning_usage_and_no_tools():
    events, c = run([chunk({"reasoning": "thinking..."}), chunk({"content": "<tool_call>x</tool_call>"}),
                     chunk(finish="stop"), chunk(usage={"prompt_tokens": 5, "completion_tokens": 3,
                                                       "prompt_tokens_details": {"cached_tokens": 2}})], tools=None)
    assert events[0] == ReasoningDelta("thinking...")
    assert c.content == "<tool_call>x</tool_call>" and c.reasoning == "thinking..."
    assert events[-1] == Finish("stop", Usage(5, 3, 2))


def test_stream_without_finish_reason_is_an_upstream_error():
    asm = StreamAssembler(None)
    asm.feed(chunk({"content": "half"}))
    with pytest.raises(ProxyError) as e:
        asm.finish()
    assert e.value.code == "upstream_error"


def test_empty_text_never_becomes_an_event():
    events, _ = run([chunk({"content": ""}), chunk({"content": "hi"}), chunk(finish="stop")])
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta("hi")]


def test_whitespace_between_structured_calls_is_not_content():
    events, c = run([chunk({"tool_calls": [structured("get_weather", '{"city": "Paris"}', "a")]}),
                     chunk({"content": "\n"}),
                     chunk({"tool_calls": [structured("get_weather", '{"city": "London"}', "b")]}),
                     chunk(finish="tool_calls")])
    assert c.content is None and [t.name for t in c.tool_calls] == ["get_weather", "get_weather"]
    assert not any(isinstance(e, TextDelta) for e in events)


def _completion_together(chunks, tools=TOOLS):
    ids = (f"id{i}" for i in itertools.count())
    asm = StreamAssembler(tools, new_id=lambda: next(ids), estimate_prompt=lambda: 7)
    events = asm.feed_many(chunks) + asm.finish()
    b = CompletionBuilder()
    b.extend(events)
    return events, b.build()


@pytest.mark.parametrize("tools", [TOOLS, None])
def test_chunks_read_together_give_the_completion_they_give_one_by_one(tools):
    """A read of many one-token chunks is assembled as one text: the same completion (calls,
    text, finish, the counted usage of an upstream that sends none), in fewer events."""
    pieces = ["I will ", "check. ", "<tool", "_call>", '{"name": "get_weather", ', '"arguments": {"city": "Oslo"}}',
              "</tool_call>", " done"]
    chunks = [chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces]
    chunks += [chunk({"reasoning": "hmm"}), chunk({"content": "!"}), chunk(finish="stop")]
    ids = (f"id{i}" for i in itertools.count())
    one_by_one = StreamAssembler(tools, new_id=lambda: next(ids), estimate_prompt=lambda: 7)
    alone = [ev for c in chunks for ev in one_by_one.feed(c)] + one_by_one.finish()
    b = CompletionBuilder()
    b.extend(alone)
    events, together = _completion_together(chunks, tools)
    assert together == b.build()
    assert together.usage == Usage(7, len(pieces) + 2, estimated=True)  # every token chunk counted
    assert len(events) < len(alone)
    # a reasoning chunk keeps its place between the texts around it
    kinds = [type(ev).__name__ for ev in events]
    assert kinds.index("ReasoningDelta") < max(i for i, k in enumerate(kinds) if k == "TextDelta")
