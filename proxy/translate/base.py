"""What every protocol renderer receives and provides."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..completion import Completion, Event
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


@dataclass(frozen=True)
class ClientProtocol:
    """One client protocol as a row of functions: its request into a chat request, a completion
    out as JSON or as a stream. (Its error shape is the route's: see proxy/errors.py.)"""
    name: str  # label for logs/metrics, and part of the body memo's digest
    to_chat: Callable[[dict], dict] | None  # None: the body already is a chat request
    render_json: Callable[[Completion, ResponseContext], dict]
    stream_renderer: Callable[[ResponseContext], StreamRenderer]
    id_prefix: str
    passes_comments: bool = True  # write upstream SSE comments through (else: renderer keep-alive)
    renders_request: bool = False  # its responses echo the client's request (Responses does)
    announces_prompt_tokens: bool = False  # its stream's first event carries the prompt's size
