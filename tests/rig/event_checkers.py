"""State machines that validate streamed Responses and Anthropic Messages event sequences.

Used on renderer output in unit tests and on real server output in end-to-end tests. Each
checker walks the events once, asserts the protocol's rules (every item/block started is
stopped, indices contiguous, sequence numbers increasing, deltas add up to the final values,
usage present at the end, the terminal event last) and returns what a client would have
assembled, so tests can compare it with the non-streamed rendering.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from proxy.sse import SSEDecoder

Events = list[tuple[str | None, dict]]


def parse_sse(raw: bytes) -> Events:
    """(event name, JSON data) pairs; comments (keep-alives) are dropped, as clients drop them."""
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.close()
    return [(e.event, json.loads(e.data)) for e in events if e.data is not None]


# --- OpenAI Responses --------------------------------------------------------------------------

RESPONSES_TERMINALS = {"response.completed": "completed", "response.incomplete": "incomplete",
                       "response.failed": "failed"}
# item type -> (part added, text delta, text done, part done, the delta/done text field)
_ITEM_PARTS = {
    "message": ("response.content_part.added", "response.output_text.delta", "response.output_text.done",
                "response.content_part.done"),
    "reasoning": ("response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                  "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"),
    "function_call": (None, "response.function_call_arguments.delta", "response.function_call_arguments.done",
                      None),
}


@dataclass
class _Item:
    type: str
    id: str
    index: int
    part_open: bool = False
    part_done: bool = False
    text_done: bool = False
    deltas: list[str] = field(default_factory=list)


def check_responses_stream(events: Events) -> dict:
    """Validate a Responses event sequence; returns the terminal event's `response`."""
    assert events, "empty stream"
    names = [data.get("type") for _, data in events]
    for name, data in events:
        assert name == data.get("type"), f"SSE event name {name!r} != data type {data.get('type')!r}"
    seqs = [data.get("sequence_number") for _, data in events]
    assert seqs == list(range(len(events))), f"sequence_numbers not 0..n-1: {seqs}"
    assert names[:2] == ["response.created", "response.in_progress"], names[:2]
    assert names[-1] in RESPONSES_TERMINALS, f"last event {names[-1]} is not terminal"
    terminals = [n for n in names if n in RESPONSES_TERMINALS]
    assert len(terminals) == 1, f"several terminal events: {terminals}"
    if "error" in names:
        assert names.index("error") == len(names) - 2 and names[-1] == "response.failed", names[-3:]

    response_id = events[0][1]["response"]["id"]
    done_items: list[dict] = []
    open_item: _Item | None = None
    for _, data in events[2:-1]:
        kind = data["type"]
        if kind == "error":
            assert isinstance(data.get("message"), str) and data["message"], data
            continue
        if kind == "response.output_item.added":
            assert open_item is None, f"item {data['item']['id']} added while {open_item} is open"
            assert data["output_index"] == len(done_items), f"output_index gap: {data['output_index']}"
            item = data["item"]
            assert item["type"] in _ITEM_PARTS, f"unexpected item type {item['type']}"
            open_item = _Item(item["type"], item["id"], data["output_index"])
            continue
        assert open_item is not None, f"{kind} outside an item"
        assert data.get("output_index") == open_item.index, f"{kind} for output_index {data.get('output_index')}"
        if kind == "response.output_item.done":
            done_items.append(_finish_item(open_item, data["item"]))
            open_item = None
            continue
        assert data.get("item_id") == open_item.id, f"{kind} for item {data.get('item_id')} != {open_item.id}"
        _item_event(open_item, kind, data)
    assert open_item is None, f"item {open_item} never done"

    terminal, response = names[-1], events[-1][1]["response"]
    assert response["id"] == response_id, "response id changed during the stream"
    assert response["status"] == RESPONSES_TERMINALS[terminal], (terminal, response["status"])
    assert response["output"] == done_items, "terminal output differs from the items streamed"
    if terminal == "response.failed":
        assert response["error"] and response["error"]["message"], response.get("error")
    else:
        usage = response["usage"]
        assert usage is not None and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    if terminal == "response.incomplete":
        assert response["incomplete_details"]["reason"], response["incomplete_details"]
    return response


def _item_event(item: _Item, kind: str, data: dict) -> None:
    part_added, delta, text_done, part_done = _ITEM_PARTS[item.type]
    if kind == part_added:
        assert not item.part_open and not item.part_done, f"second part in {item.id}"
        item.part_open = True
    elif kind == delta:
        assert item.part_open or part_added is None, f"delta before part added in {item.id}"
        assert not item.text_done, f"delta after done in {item.id}"
        item.deltas.append(data["delta"])
    elif kind == text_done:
        assert not item.text_done and (item.part_open or part_added is None), f"misplaced {kind}"
        field_name = "arguments" if item.type == "function_call" else "text"
        assert data[field_name] == "".join(item.deltas), f"{kind} text differs from its deltas"
        item.text_done = True
    elif kind == part_done:
        assert item.text_done and item.part_open, f"{kind} before the text was done in {item.id}"
        assert data["part"]["text"] == "".join(item.deltas)
        item.part_open, item.part_done = False, True
    else:
        raise AssertionError(f"unexpected {kind} inside a {item.type} item")


def _finish_item(item: _Item, final: dict) -> dict:
    assert final["id"] == item.id and final["type"] == item.type, "item identity changed at done"
    assert not item.part_open, f"part of {item.id} never done"
    if item.text_done:
        text = "".join(item.deltas)
        if item.type == "message":
            assert [c["text"] for c in final["content"]] == [text]
        elif item.type == "reasoning":
            assert [s["text"] for s in final["summary"]] == [text]
        else:
            assert final["arguments"] == text
    return final


# --- Anthropic Messages --------------------------------------------------------------------------

_BLOCK_DELTAS = {"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"},
                 "tool_use": {"input_json_delta"}}
ANTHROPIC_STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}


def check_messages_stream(events: Events) -> dict:
    """Validate a Messages event sequence; returns the assembled message (or the error body)."""
    assert events, "empty stream"
    for name, data in events:
        assert name == data.get("type"), f"SSE event name {name!r} != data type {data.get('type')!r}"
    events = [(n, d) for n, d in events if n != "ping"]
    assert events[0][0] == "message_start", events[0][0]
    message = dict(events[0][1]["message"])
    assert message["content"] == [] and message["stop_reason"] is None
    content: list[dict] = []
    open_index: int | None = None
    partial_json: dict[int, str] = {}
    for i, (name, data) in enumerate(events[1:], start=1):
        last = i == len(events) - 1
        assert message["stop_reason"] is None or name == "message_stop", f"{name} after message_delta"
        if name == "content_block_start":
            assert open_index is None, f"block {data['index']} started while {open_index} is open"
            assert data["index"] == len(content), f"block index gap: {data['index']}"
            content.append(dict(data["content_block"]))
            open_index = data["index"]
        elif name == "content_block_delta":
            assert open_index is not None and data["index"] == open_index, f"delta for block {data['index']}"
            _apply_delta(content[open_index], data["delta"], partial_json, open_index)
        elif name == "content_block_stop":
            assert open_index is not None and data["index"] == open_index, f"stop for block {data['index']}"
            if content[open_index]["type"] == "tool_use":
                content[open_index]["input"] = json.loads(partial_json.get(open_index) or "{}")
            open_index = None
        elif name == "message_delta":
            assert open_index is None, f"message_delta while block {open_index} is open"
            assert data["delta"]["stop_reason"] in ANTHROPIC_STOP_REASONS, data["delta"]
            usage = data["usage"]
            assert isinstance(usage.get("output_tokens"), int) and isinstance(usage.get("input_tokens"), int)
            message.update(stop_reason=data["delta"]["stop_reason"], stop_sequence=data["delta"]["stop_sequence"],
                           usage={**message["usage"], **usage})
        elif name == "message_stop":
            assert message["stop_reason"] is not None, "message_stop before message_delta"
            assert last, "events after message_stop"
        elif name == "error":
            assert data["error"]["type"] and data["error"]["message"], data
            assert open_index is None, f"error while block {open_index} is open"
            assert last, "events after error"
            return data
        else:
            raise AssertionError(f"unexpected event {name}")
    assert events[-1][0] == "message_stop", f"stream ended with {events[-1][0]}, not message_stop"
    message["content"] = content
    return message


def _apply_delta(block: dict, delta: dict, partial_json: dict[int, str], index: int) -> None:
    assert delta["type"] in _BLOCK_DELTAS[block["type"]], f"{delta['type']} in a {block['type']} block"
    if delta["type"] == "text_delta":
        block["text"] += delta["text"]
    elif delta["type"] == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif delta["type"] == "signature_delta":
        block["signature"] = delta["signature"]
    else:
        partial_json[index] = partial_json.get(index, "") + delta["partial_json"]
