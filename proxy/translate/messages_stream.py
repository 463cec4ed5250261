"""Canonical events -> Anthropic Messages SSE (`event: <type>` + `data: {"type": ..., ...}`).

Sequence (what the `anthropic` SDK's accumulator and Claude Code expect):
  message_start (empty content; usage.input_tokens is the prompt's size when the proxy knows it
    already, from a cache hit or the served model's tokenizer, otherwise 0 until message_delta),
  per content block: content_block_start, content_block_delta*, content_block_stop
    text: text_delta · thinking: thinking_delta · tool_use: one input_json_delta (calls arrive whole)
  message_delta (stop_reason, cumulative usage incl. input_tokens), message_stop.
`ping` events while waiting; on failure the open block is stopped and an `error` event ends
the stream. Block indices count from 0 without gaps. A text or thinking block stays open while
events of its kind keep coming; any other event closes it.
"""
from __future__ import annotations

from ..completion import Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from ..errors import ProxyError
from ..sse import encode_json
from .base import ResponseContext
from .messages_render import message_object, stop_reason, tool_input_json, tool_use_id, usage_json, wants_thinking

# Block type -> (empty block announced at start, delta type, the delta's text field).
TEXT_BLOCKS = {
    "text": ({"type": "text", "text": ""}, "text_delta", "text"),
    "thinking": ({"type": "thinking", "thinking": "", "signature": ""}, "thinking_delta", "thinking"),
}


class MessagesStreamRenderer:
    def __init__(self, ctx: ResponseContext) -> None:
        self.ctx = ctx
        self._show_thinking = wants_thinking(ctx)
        self._next_index = 0
        self._open: str | None = None  # type of the open text/thinking block
        self._has_calls = False
        self._ended = False

    @staticmethod
    def _event(kind: str, **fields: object) -> bytes:
        return encode_json({"type": kind, **fields}, event=kind)

    def head(self) -> list[bytes]:
        known = None if self.ctx.prompt_tokens is None else Usage(prompt_tokens=self.ctx.prompt_tokens)
        return [self._event("message_start", message=message_object(self.ctx, [], None, usage_json(known)))]

    def render(self, ev: Event) -> list[bytes]:
        if isinstance(ev, TextDelta):
            return self._text("text", ev.text)
        if isinstance(ev, ReasoningDelta):
            return self._text("thinking", ev.text) if self._show_thinking else []
        if isinstance(ev, ToolCallDelta):
            return self._close() + self._tool_use(ev)
        if isinstance(ev, Finish):
            self._ended = True
            delta = {"stop_reason": stop_reason(ev.finish_reason, self._has_calls), "stop_sequence": None}
            return self._close() + [self._event("message_delta", delta=delta, usage=usage_json(ev.usage)),
                                    self._event("message_stop")]
        if isinstance(ev, Logprobs):
            return []  # this protocol has no per-token log-probabilities
        raise TypeError(f"unknown event {ev!r}")

    def keepalive(self) -> bytes:
        return self._event("ping")

    def fail(self, err: ProxyError) -> list[bytes]:
        if self._ended:
            return []
        self._ended = True
        return self._close() + [encode_json(err.anthropic_body(), event="error")]

    def _text(self, kind: str, text: str) -> list[bytes]:
        if not text:
            return []
        out: list[bytes] = []
        if self._open != kind:
            out += self._close()
            out.append(self._start(TEXT_BLOCKS[kind][0]))
            self._open = kind
        _, delta_type, field = TEXT_BLOCKS[kind]
        out.append(self._event("content_block_delta", index=self._next_index - 1,
                               delta={"type": delta_type, field: text}))
        return out

    def _start(self, block: dict) -> bytes:
        self._next_index += 1
        return self._event("content_block_start", index=self._next_index - 1, content_block=block)

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [self._event("content_block_stop", index=self._next_index - 1)]

    def _tool_use(self, ev: ToolCallDelta) -> list[bytes]:
        self._has_calls = True
        start = self._start({"type": "tool_use", "id": tool_use_id(ev.call), "name": ev.call.name, "input": {}})
        index = self._next_index - 1
        delta = {"type": "input_json_delta", "partial_json": tool_input_json(ev.call.arguments)}
        return [start, self._event("content_block_delta", index=index, delta=delta),
                self._event("content_block_stop", index=index)]
