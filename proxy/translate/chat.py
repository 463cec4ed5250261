"""Chat completions output: canonical completion/events -> OpenAI chat JSON and SSE chunks.

Chunks have the shape mlx_lm.server and OpenAI send, with two deliberate choices for the
Vercel AI SDK behind anyclaude: the first delta carries only the role (never `content: ""`,
which makes Claude Code re-send the request), and each tool call arrives whole in one delta
with `index`, a string `id`, `type` and `function.name`.
"""
from __future__ import annotations

from ..completion import Completion, Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta
from ..errors import ProxyError
from ..sse import DONE, encode_comment, encode_json
from .base import ResponseContext


def tool_call_json(call: ToolCall, index: int | None = None) -> dict:
    out: dict = {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
    if index is not None:
        out = {"index": index, **out}
    return out


def render_json(c: Completion, ctx: ResponseContext) -> dict:
    message: dict = {"role": "assistant", "content": c.content}
    if c.reasoning:
        message["reasoning"] = c.reasoning
    if c.tool_calls:
        message["tool_calls"] = [tool_call_json(t) for t in c.tool_calls]
    out = {"id": ctx.response_id, "object": "chat.completion", "created": ctx.created, "model": ctx.model,
           "choices": [{"index": 0, "message": message, "finish_reason": c.finish_reason,
                        "logprobs": {"content": list(c.logprobs)} if c.logprobs else None}]}
    if c.usage is not None:
        out["usage"] = c.usage.to_openai()
    return out


class ChatStreamRenderer:
    def __init__(self, ctx: ResponseContext) -> None:
        self.ctx = ctx

    def _chunk(self, delta: dict, finish_reason: str | None = None, logprobs: dict | None = None) -> bytes:
        return encode_json({"id": self.ctx.response_id, "object": "chat.completion.chunk",
                            "created": self.ctx.created, "model": self.ctx.model,
                            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs,
                                         "finish_reason": finish_reason}]})

    def head(self) -> list[bytes]:
        return [self._chunk({"role": "assistant"})]

    def render(self, ev: Event) -> list[bytes]:
        if isinstance(ev, TextDelta):
            return [self._chunk({"content": ev.text})] if ev.text else []
        if isinstance(ev, ReasoningDelta):
            return [self._chunk({"reasoning": ev.text})] if ev.text else []
        if isinstance(ev, ToolCallDelta):
            return [self._chunk({"tool_calls": [tool_call_json(ev.call, ev.index)]})]
        if isinstance(ev, Logprobs):
            return [self._chunk({}, logprobs={"content": list(ev.entries)})]
        if isinstance(ev, Finish):
            out = [self._chunk({}, ev.finish_reason)]
            if self.ctx.include_usage and ev.usage is not None:
                out.append(encode_json({"id": self.ctx.response_id, "object": "chat.completion.chunk",
                                        "created": self.ctx.created, "model": self.ctx.model,
                                        "choices": [], "usage": ev.usage.to_openai()}))
            out.append(DONE)
            return out
        raise TypeError(f"unknown event {ev!r}")

    def keepalive(self) -> bytes:
        return encode_comment("keep-alive")

    def fail(self, err: ProxyError) -> list[bytes]:
        # The stream ends without [DONE] so clients see it as incomplete.
        return [encode_json(err.openai_body())]
