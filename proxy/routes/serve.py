"""Serving a generation to one client, for every protocol: JSON or SSE, headers, keep-alives.

A protocol is a row of functions (translate in, render out: `ClientProtocol`); what a request
gets is decided by proxy/generation/request_path.py; this module is the only place that writes
a generation to the network. A stream response is not started until
there is something to send, so an error that happens first (queue full, upstream down, a
timeout before the first token) is still a proper HTTP status; after the first byte, errors
become an error event and the stream ends without its normal terminator.
"""
from __future__ import annotations

import asyncio
import secrets
import time

import orjson
from aiohttp import web

from ..cache.policy import parse_cache_control
from ..errors import ProxyError
from ..generation.pipeline import Ticket
from ..generation.request_path import Refused, Served
from ..server.logs import note_error
from ..sse import encode_comment
from ..translate.base import ClientProtocol, ResponseContext
from ..upstream.client import Comment
from .body import read_body
from .state import CACHE_KEY_KEY, CACHE_STATUS_KEY, STATE_KEY, AppState

# On a response whose tools the proxy wrote into the prompt (the served template drops them).
TOOL_PROMPT_HEADER = "X-Tool-Prompt"


def json_bytes_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers, content_type="application/json")


async def serve_protocol(request: web.Request, protocol: ClientProtocol) -> web.StreamResponse:
    """The handler of every generation endpoint: the request path decides (one entry point,
    proxy/generation/request_path.py), this writes what it decided. Errors are raised, and
    the errors middleware answers them in the route's shape."""
    state: AppState = request.app[STATE_KEY]
    raw = await read_body(request)
    outcome = await state.path.open(raw, protocol, parse_cache_control(request.headers))
    if isinstance(outcome, Refused):
        request[CACHE_STATUS_KEY] = outcome.cache_status
        raise outcome.error
    try:
        return await _respond(request, protocol, state, outcome)
    finally:
        outcome.ticket.release()


async def _respond(request: web.Request, protocol: ClientProtocol, state: AppState,
                   served: Served) -> web.StreamResponse:
    ticket, prepared = served.ticket, served.prepared
    request[CACHE_STATUS_KEY] = ticket.status
    request[CACHE_KEY_KEY] = prepared.key
    headers = {}
    if prepared.tool_prompt:
        headers[TOOL_PROMPT_HEADER] = "injected"
    if ticket.age is not None:
        headers["Age"] = str(int(ticket.age))
    ctx = ResponseContext(response_id=protocol.id_prefix + secrets.token_hex(12), created=int(time.time()),
                          model=state.settings.served_model, include_usage=prepared.include_usage,
                          client_request=served.client_body,
                          prompt_tokens=await _known_prompt_tokens(state, ticket, served.upstream_body)
                          if prepared.client_stream and protocol.announces_prompt_tokens else None)
    if prepared.client_stream:
        return await _write_stream(request, protocol, ticket, ctx, headers, state.settings.keepalive_interval)
    completion = await ticket.result()
    return json_bytes_response(protocol.render_json(completion, ctx), headers=headers)


async def _known_prompt_tokens(state: AppState, ticket: Ticket, prompt: dict | None) -> int | None:
    """The prompt's size before the generation ends: a hit's stored usage, or the served model's
    tokenizer (loaded at start-up; bounded by the keep-alive interval, so the client's first
    event is never later than it would be anyway)."""
    if ticket.hit is not None:
        usage = ticket.hit.completion.usage
        return usage.prompt_tokens if usage is not None else None
    if prompt is None:
        return None
    try:
        async with asyncio.timeout(state.settings.keepalive_interval):
            return await state.tokens.exact(prompt)
    except TimeoutError:
        return None


async def _write_stream(request: web.Request, protocol: ClientProtocol, ticket: Ticket, ctx: ResponseContext,
                  headers: dict[str, str], keepalive: float) -> web.StreamResponse:
    renderer = protocol.stream_renderer(ctx)
    head = renderer.head()  # first: renderers number their events in the order they make them
    resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def send(parts: list[bytes]) -> None:
        if not resp.prepared:
            await resp.prepare(request)
            parts = head + parts
        if parts:
            await resp.write(b"".join(parts))

    try:
        async for batch in ticket.batches(keepalive):
            if not batch:
                await send([renderer.keepalive()])
                continue
            parts: list[bytes] = []
            for item in batch:
                if isinstance(item, Comment):
                    parts.append(encode_comment(item.text) if protocol.passes_comments else renderer.keepalive())
                else:
                    parts.extend(renderer.render(item))
            await send(parts)
    except ProxyError as e:
        if not resp.prepared:
            raise
        note_error(e.code)
        await resp.write(b"".join(renderer.fail(e)))
    if not resp.prepared:
        await send([])
    await resp.write_eof()
    return resp
