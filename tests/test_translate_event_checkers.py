"""The event-sequence checkers reject what clients would choke on (so their passes mean something)."""
from __future__ import annotations

import pytest

from proxy.completion import Finish, TextDelta, ToolCall, ToolCallDelta, Usage
from proxy.translate.base import ResponseContext
from proxy.translate.messages import MessagesStreamRenderer
from proxy.translate.responses import ResponsesStreamRenderer
from tests.rig.event_checkers import Events, check_messages_stream, check_responses_stream, parse_sse

CTX = ResponseContext("r1", 1, "m")
EVENTS = [TextDelta("hi"), ToolCallDelta(0, ToolCall("call_1", "Read", '{"a":1}')), Finish("tool_calls", Usage(3, 2))]


def rendered(renderer_cls: type) -> Events:
    renderer = renderer_cls(CTX)
    out = renderer.head()
    for ev in EVENTS:
        out += renderer.render(ev)
    return parse_sse(b"".join(out))


def names(events: Events) -> list[str | None]:
    return [n for n, _ in events]


def without(events: Events, name: str, nth: int = 0) -> Events:
    """`events` minus the nth event called `name`."""
    positions = [i for i, (n, _) in enumerate(events) if n == name]
    return events[:positions[nth]] + events[positions[nth] + 1:]


def test_the_reference_streams_pass() -> None:
    assert check_responses_stream(rendered(ResponsesStreamRenderer))["status"] == "completed"
    assert check_messages_stream(rendered(MessagesStreamRenderer))["stop_reason"] == "tool_use"


def renumbered(events: Events) -> Events:
    return [(n, {**d, "sequence_number": i}) for i, (n, d) in enumerate(events)]


@pytest.mark.parametrize("breakage", [
    lambda ev: renumbered(without(ev, "response.output_item.done")),  # item never done
    lambda ev: renumbered(without(ev, "response.completed")),  # no terminal event
    lambda ev: renumbered(without(ev, "response.output_text.delta")),  # done text != deltas
    lambda ev: renumbered(without(ev, "response.content_part.added")),  # delta before part
    lambda ev: renumbered(ev[:1] + ev[2:]),  # no in_progress
    lambda ev: ev[:3] + ev[4:],  # sequence gap
    lambda ev: [(n, {**d, "output_index": 1} if n == "response.output_item.added" else d) for n, d in ev],
    lambda ev: [(n, {**d, "response": {**d["response"], "usage": None}} if n == "response.completed" else d)
                for n, d in ev],  # usage missing at the end
    lambda ev: ev + [("response.completed", {**ev[-1][1], "sequence_number": len(ev)})],  # two terminals
    lambda ev: [("x", d) if n == "response.in_progress" else (n, d) for n, d in ev],  # name != type
])
def test_responses_checker_rejects_broken_streams(breakage) -> None:
    with pytest.raises(AssertionError):
        check_responses_stream(breakage(rendered(ResponsesStreamRenderer)))


@pytest.mark.parametrize("breakage", [
    lambda ev: without(ev, "content_block_stop"),  # block never stopped
    lambda ev: without(ev, "message_stop"),  # no terminal event
    lambda ev: without(ev, "message_delta"),  # no stop reason / usage
    lambda ev: without(ev, "content_block_start", 1),  # delta for a block never started
    lambda ev: [(n, {**d, "index": d["index"] + 1} if "index" in d else d) for n, d in ev],  # index gap
    lambda ev: [(n, {**d, "usage": {"input_tokens": 3}} if n == "message_delta" else d) for n, d in ev],
    lambda ev: ev + [("ping", {"type": "ping"}), ("message_stop", {"type": "message_stop"})],  # two stops
    lambda ev: [(n, {**d, "delta": {"type": "text_delta", "text": "x"}} if n == "content_block_delta" else d)
                for n, d in ev],  # text delta inside a tool_use block
])
def test_messages_checker_rejects_broken_streams(breakage) -> None:
    with pytest.raises(AssertionError):
        check_messages_stream(breakage(rendered(MessagesStreamRenderer)))


def test_parse_sse_drops_comments_and_keeps_event_names() -> None:
    assert parse_sse(b': keep-alive\n\nevent: ping\ndata: {"type":"ping"}\n\n') == [("ping", {"type": "ping"})]
