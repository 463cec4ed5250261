"""Non-stream extraction and the normalization of the upstream's own structured calls.

`extract` runs the streaming scanner over the whole text in one piece, so a non-stream answer is
by construction what the stream gives for the same text.
"""
from __future__ import annotations

import json
from collections.abc import Callable

from ..completion import TextDelta, ToolCall, ToolCallDelta
from .arguments import canonical_arguments
from .scanner import ToolCallScanner, new_call_id


def extract(text: str, tools: list[dict] | None, finish_reason: str,
            new_id: Callable[[], str] = new_call_id) -> tuple[str | None, list[ToolCall], str]:
    """(content, calls, finish_reason) for a whole message. Content is the text deltas joined
    (None when there is none); whitespace next to a call is glue and is not content, so a
    message that is only calls has `content: None`."""
    scanner = ToolCallScanner(tools, new_id)
    events = scanner.feed(text)
    tail, reason = scanner.finish(finish_reason)
    events += tail
    content = "".join(e.text for e in events if isinstance(e, TextDelta))
    calls = [e.call for e in events if isinstance(e, ToolCallDelta)]
    return content or None, calls, reason


def normalize_upstream_calls(raw: list[dict], new_id: Callable[[], str] = new_call_id
                             ) -> tuple[list[ToolCall], str]:
    """mlx_lm.server's structured `tool_calls` (message.tool_calls, or whole calls from stream
    deltas; it sends each call whole) -> canonical ToolCalls with string ids and arguments as
    one JSON object text.

    A call whose arguments cannot be made an object, or that has no name, is not dropped (the
    stock server already drops too much): it comes back as text, the second element, for the
    caller to add to the content, so the user sees what the model wrote."""
    calls: list[ToolCall] = []
    leftovers: list[str] = []
    for item in raw or ():
        fn = item.get("function") if isinstance(item, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        # mlx_lm.server json.dumps()es whatever its parser gave, so a model that wrote its
        # arguments as a JSON string arrives double-encoded: undone once more (layers=2).
        args = canonical_arguments(fn.get("arguments"), layers=2) if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name or args is None:
            leftovers.append(json.dumps(item, ensure_ascii=False))
            continue
        call_id = item.get("id")
        calls.append(ToolCall(call_id if isinstance(call_id, str) and call_id else new_id(), name, args))
    return calls, "\n".join(leftovers)
