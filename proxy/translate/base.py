"""What every protocol renderer receives and provides."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..completion import Event
from ..errors import ProxyError


@dataclass(frozen=True)
class ResponseContext:
    response_id: str  # fresh for every response, cache hits included
    created: int  # unix seconds, fresh for every response
    model: str  # the model name shown to the client
    include_usage: bool = False  # chat: stream_options.include_usage
    # The prompt's token count when known before the generation ends (a cache hit, or the served
    # model's own tokenizer): Anthropic's message_start announces it, and Claude Code reads it.
    prompt_tokens: int | None = None
    # The client's own request body, for protocols whose output echoes request settings
    # (Responses repeats tools/tool_choice/...; Messages shows thinking only when it was asked for).
    client_request: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


class StreamRenderer(Protocol):
    def head(self) -> list[bytes]:
        """Events sent before any output (role chunk, response.created, message_start)."""

    def render(self, ev: Event) -> list[bytes]:
        """Bytes for one canonical event; a Finish also closes the stream."""

    def keepalive(self) -> bytes:
        """Sent while waiting (an SSE comment, or Anthropic's ping event)."""

    def fail(self, err: ProxyError) -> list[bytes]:
        """Error after the stream began: an error event; the stream then ends."""
