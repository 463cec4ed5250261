"""Canonical completion -> OpenAI Responses `response` object, and the item shapes it is made of.

The streaming renderer builds its items with the same functions, so a streamed response ends
with exactly the object `render_json` returns for the same completion. Shapes follow the `openai`
SDK's `types/responses` models (which `client.responses.create` parses them into) and what the
Vercel AI SDK behind anyclaude reads (`usage` always present, `incomplete_details` null or set).

Reasoning becomes a `reasoning` item with one `summary_text` part: summaries are what Responses
clients (the AI SDK, Codex) display; the raw `reasoning_text` content is shown by few of them.
"""
from __future__ import annotations

from typing import Any

from ..completion import Completion, ToolCall, Usage
from .base import ResponseContext
from .ids import derive_id

# Canonical finish reasons that leave a response `incomplete`, with the reason Responses names.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# Request settings a response object repeats, with the value an absent setting shows as. The
# SDK requires tools, tool_choice and parallel_tool_calls; the rest mirror what OpenAI echoes.
ECHOED_FIELDS: dict[str, Any] = {
    "instructions": None, "max_output_tokens": None, "metadata": {}, "parallel_tool_calls": True,
    "reasoning": None, "temperature": None, "text": {"format": {"type": "text"}},
    "tool_choice": "auto", "tools": [], "top_p": None, "truncation": "disabled", "user": None,
}
# Item id prefixes by item type (OpenAI's own: msg_, fc_, rs_).
ITEM_PREFIXES = {"message": "msg_", "function_call": "fc_", "reasoning": "rs_"}


def response_id(ctx: ResponseContext) -> str:
    return derive_id("resp_", ctx.response_id)


def item_id(ctx: ResponseContext, kind: str, output_index: int) -> str:
    """Unique within the response and the same in JSON and stream (items are in the same order)."""
    return f"{derive_id(ITEM_PREFIXES[kind], ctx.response_id)}_{output_index}"


def output_text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id_: str, text: str, status: str) -> dict:
    return {"id": item_id_, "type": "message", "role": "assistant", "status": status,
            "content": [output_text_part(text)] if status != "in_progress" else []}


def summary_part(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def reasoning_item(item_id_: str, text: str, status: str) -> dict:
    return {"id": item_id_, "type": "reasoning", "status": status,
            "summary": [summary_part(text)] if status != "in_progress" else []}


def function_call_item(item_id_: str, call: ToolCall, status: str) -> dict:
    return {"id": item_id_, "type": "function_call", "status": status, "call_id": call.id,
            "name": call.name, "arguments": call.arguments if status != "in_progress" else ""}


def usage_json(usage: Usage | None) -> dict:
    """Always present: the AI SDK requires usage on the final event (zeros when unknown)."""
    u = usage or Usage()
    return {"input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": u.cached_tokens or 0, "cache_write_tokens": 0},
            "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total_tokens}


def final_status(finish_reason: str) -> tuple[str, dict | None]:
    """(status, incomplete_details) of a finished response."""
    reason = INCOMPLETE_REASONS.get(finish_reason)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def response_object(ctx: ResponseContext, status: str, output: list[dict], usage: dict | None,
                    incomplete_details: dict | None = None, error: dict | None = None) -> dict:
    request = ctx.client_request or {}
    echoed = {name: default if request.get(name) is None else request[name]
              for name, default in ECHOED_FIELDS.items()}
    return {"id": response_id(ctx), "object": "response", "created_at": ctx.created, "status": status,
            "error": error, "incomplete_details": incomplete_details, "model": ctx.model,
            "output": output, "usage": usage, **echoed}


def render_json(c: Completion, ctx: ResponseContext) -> dict:
    status, incomplete = final_status(c.finish_reason)
    pieces: list[tuple[str, Any]] = []
    if c.reasoning:
        pieces.append(("reasoning", c.reasoning))
    if c.content:
        pieces.append(("message", c.content))
    pieces.extend(("function_call", call) for call in c.tool_calls)

    output = []
    for index, (kind, value) in enumerate(pieces):
        # Only text a length cut interrupted (the last item) is incomplete; calls arrive whole.
        cut = index == len(pieces) - 1 and kind != "function_call"
        item_status = status if cut else "completed"
        output.append(ITEM_BUILDERS[kind](item_id(ctx, kind, index), value, item_status))
    return response_object(ctx, status, output, usage_json(c.usage), incomplete)


ITEM_BUILDERS = {"message": message_item, "reasoning": reasoning_item, "function_call": function_call_item}
