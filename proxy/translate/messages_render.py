"""Canonical completion -> Anthropic `message` object, and the pieces the stream shares with it.

Shapes follow the `anthropic` SDK's `types` (Message, TextBlock, ToolUseBlock, ThinkingBlock,
Usage). Choices worth knowing:
  * stop_reason: `stop` -> end_turn, `tool_calls` (or any output with calls) -> tool_use,
    `length` -> max_tokens. The upstream reports a matched stop sequence only as `stop`, so
    `stop_sequence` is never reported: such a turn ends as `end_turn` with stop_sequence null.
  * usage: Anthropic's `input_tokens` excludes cache reads (Claude Code adds input_tokens +
    cache_read_input_tokens for its context meter), so cached prompt tokens move there.
  * reasoning becomes a `thinking` block (empty signature) only when the request enabled
    thinking, as Anthropic does (otherwise clients reading `content[0].text` would break), and
    not when it asked for the thinking to be hidden (`display: "omitted"` / `"updates"`, what
    Claude Code 2.1 sends). `budget_tokens` cannot be enforced on a local model: its reasoning
    counts against max_tokens like any output.
  * tool_use ids get the `toolu_` prefix, derived from the canonical id so it is stable.
"""
from __future__ import annotations

from ..completion import Completion, ToolCall, Usage
from ..toolcalls.arguments import arguments_object, canonical_arguments
from .base import ResponseContext
from .ids import derive_id

# Canonical finish reason -> Anthropic stop_reason (anything else ends the turn normally).
STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens",
                "content_filter": "refusal"}
# `thinking.type` values with which a client asks to see reasoning...
THINKING_ENABLED = frozenset({"enabled", "adaptive"})
# ...and `thinking.display` values that hide it anyway (Anthropic then sends empty thinking).
THINKING_HIDDEN = frozenset({"omitted", "updates"})


def message_id(ctx: ResponseContext) -> str:
    return derive_id("msg_", ctx.response_id)


def tool_use_id(call: ToolCall) -> str:
    return derive_id("toolu_", call.id)


def wants_thinking(ctx: ResponseContext) -> bool:
    thinking = (ctx.client_request or {}).get("thinking")
    return (isinstance(thinking, dict) and thinking.get("type") in THINKING_ENABLED
            and thinking.get("display") not in THINKING_HIDDEN)


def tool_input_json(arguments: str) -> str:
    """The call's arguments as a JSON object text; `{}` if the upstream produced anything else."""
    return canonical_arguments(arguments) or "{}"


def stop_reason(finish_reason: str, has_calls: bool) -> str:
    if has_calls and finish_reason in ("stop", "tool_calls"):
        return "tool_use"
    return STOP_REASONS.get(finish_reason, "end_turn")


def usage_json(usage: Usage | None) -> dict:
    u = usage or Usage()
    cached = u.cached_tokens or 0
    return {"input_tokens": max(u.prompt_tokens - cached, 0), "output_tokens": u.completion_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def message_object(ctx: ResponseContext, content: list[dict], stop: str | None, usage: dict) -> dict:
    return {"id": message_id(ctx), "type": "message", "role": "assistant", "model": ctx.model,
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage}


def render_json(c: Completion, ctx: ResponseContext) -> dict:
    content: list[dict] = []
    if c.reasoning and wants_thinking(ctx):
        content.append({"type": "thinking", "thinking": c.reasoning, "signature": ""})
    if c.content:
        content.append({"type": "text", "text": c.content})
    for call in c.tool_calls:
        content.append({"type": "tool_use", "id": tool_use_id(call), "name": call.name,
                        "input": arguments_object(call.arguments) or {}})
    return message_object(ctx, content, stop_reason(c.finish_reason, bool(c.tool_calls)), usage_json(c.usage))
