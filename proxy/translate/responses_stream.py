"""Canonical events -> OpenAI Responses SSE (`event: <type>` + `data: {"type": ..., ...}`).

Sequence (what the `openai` SDK's stream accumulator and the Vercel AI SDK expect):
  response.created, response.in_progress,
  per output item: response.output_item.added, its part/argument events, response.output_item.done
    message:   content_part.added, output_text.delta*, output_text.done, content_part.done
    reasoning: reasoning_summary_part.added, reasoning_summary_text.delta*, .done, part.done
    call:      function_call_arguments.delta, function_call_arguments.done (a call arrives whole)
  response.completed | response.incomplete (length) with the full output and usage,
  or on failure: error, response.failed.
Every event carries a `sequence_number` counting from 0. An item stays open while events of its
kind keep coming; a different kind closes it and opens the next item.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..completion import Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCallDelta
from ..errors import ProxyError
from ..sse import encode_comment, encode_json
from .base import ResponseContext
from .responses_render import (final_status, function_call_item, item_id, message_item, output_text_part,
                               reasoning_item, response_object, summary_part, usage_json)


@dataclass
class _OpenItem:
    kind: str  # message | reasoning
    index: int
    id: str
    texts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.texts)


class ResponsesStreamRenderer:
    def __init__(self, ctx: ResponseContext) -> None:
        self.ctx = ctx
        self._seq = 0
        self._started = False
        self._ended = False
        self._done_items: list[dict] = []  # finished output items, by output index
        self._open: _OpenItem | None = None

    def _event(self, kind: str, **fields: object) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return encode_json(data, event=kind)

    def head(self) -> list[bytes]:
        self._started = True
        snapshot = response_object(self.ctx, "in_progress", [], None)
        return [self._event("response.created", response=snapshot),
                self._event("response.in_progress", response=snapshot)]

    def render(self, ev: Event) -> list[bytes]:
        if isinstance(ev, TextDelta):
            return self._text("message", ev.text)
        if isinstance(ev, ReasoningDelta):
            return self._text("reasoning", ev.text)
        if isinstance(ev, ToolCallDelta):
            return self._close("completed") + self._call(ev)
        if isinstance(ev, Finish):
            status, incomplete = final_status(ev.finish_reason)
            out = self._close(status)
            self._ended = True
            terminal = "response.completed" if status == "completed" else "response.incomplete"
            return out + [self._event(terminal, response=response_object(
                self.ctx, status, self._done_items, usage_json(ev.usage), incomplete))]
        if isinstance(ev, Logprobs):
            return []  # this protocol has no per-token log-probabilities
        raise TypeError(f"unknown event {ev!r}")

    def keepalive(self) -> bytes:
        return encode_comment("keep-alive")

    def fail(self, err: ProxyError) -> list[bytes]:
        """`error` (for clients that watch it) then `response.failed` (the terminal event)."""
        if self._ended:
            return []
        out = [] if self._started else self.head()
        out += self._close("incomplete")
        self._ended = True
        out.append(self._event("error", code=err.code, message=err.message, param=err.param))
        # ResponseError.code is a closed list in the SDK; our own code travels in the error event.
        failure = {"code": "server_error", "message": err.message}
        out.append(self._event("response.failed", response=response_object(
            self.ctx, "failed", self._done_items, None, error=failure)))
        return out

    # --- items ----------------------------------------------------------------------------

    def _text(self, kind: str, text: str) -> list[bytes]:
        if not text:
            return []
        out: list[bytes] = []
        if self._open is None or self._open.kind != kind:
            out += self._close("completed")
            out += self._open_item(kind)
        item = self._open
        assert item is not None
        item.texts.append(text)
        if kind == "message":
            out.append(self._event("response.output_text.delta", item_id=item.id, output_index=item.index,
                                   content_index=0, delta=text, logprobs=[]))
        else:
            out.append(self._event("response.reasoning_summary_text.delta", item_id=item.id,
                                   output_index=item.index, summary_index=0, delta=text))
        return out

    def _open_item(self, kind: str) -> list[bytes]:
        index = len(self._done_items)
        item = self._open = _OpenItem(kind, index, item_id(self.ctx, kind, index))
        where = {"item_id": item.id, "output_index": index}
        if kind == "message":
            return [self._event("response.output_item.added", output_index=index,
                                item=message_item(item.id, "", "in_progress")),
                    self._event("response.content_part.added", **where, content_index=0,
                                part=output_text_part(""))]
        return [self._event("response.output_item.added", output_index=index,
                            item=reasoning_item(item.id, "", "in_progress")),
                self._event("response.reasoning_summary_part.added", **where, summary_index=0,
                            part=summary_part(""))]

    def _close(self, status: str) -> list[bytes]:
        item, self._open = self._open, None
        if item is None:
            return []
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            done = message_item(item.id, item.text, status)
            out = [self._event("response.output_text.done", **where, content_index=0, text=item.text, logprobs=[]),
                   self._event("response.content_part.done", **where, content_index=0,
                               part=output_text_part(item.text))]
        else:
            done = reasoning_item(item.id, item.text, status)
            out = [self._event("response.reasoning_summary_text.done", **where, summary_index=0, text=item.text),
                   self._event("response.reasoning_summary_part.done", **where, summary_index=0,
                               part=summary_part(item.text))]
        self._done_items.append(done)
        return out + [self._event("response.output_item.done", output_index=item.index, item=done)]

    def _call(self, ev: ToolCallDelta) -> list[bytes]:
        index = len(self._done_items)
        fc_id = item_id(self.ctx, "function_call", index)
        where = {"item_id": fc_id, "output_index": index}
        done = function_call_item(fc_id, ev.call, "completed")
        out = [self._event("response.output_item.added", output_index=index,
                           item=function_call_item(fc_id, ev.call, "in_progress"))]
        if ev.call.arguments:
            out.append(self._event("response.function_call_arguments.delta", **where, delta=ev.call.arguments))
        out.append(self._event("response.function_call_arguments.done", **where, arguments=ev.call.arguments))
        self._done_items.append(done)
        return out + [self._event("response.output_item.done", output_index=index, item=done)]
