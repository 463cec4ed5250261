"""Serving a generation to one client, for every protocol: JSON or SSE, headers, keep-alives.

A protocol is a row of functions (translate in, render out, error shape); this module is the
only place that writes a generation to the network. A stream response is not started until
there is something to send, so an error that happens first (queue full, upstream down, a
timeout before the first token) is still a proper HTTP status; after the first byte, errors
become an error event and the stream ends without its normal terminator.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ..completion import Completion
from ..errors import ProxyError
from ..sse import encode_comment
from ..translate.base import ResponseContext, StreamRenderer
from ..upstream import Comment
from .state import CACHE_STATUS_KEY, STATE_KEY, AppState

_KEEPALIVE = object()


@dataclass(frozen=True)
class Protocol:
    name: str  # label for logs/metrics
    to_chat: Callable[[dict], dict] | None  # None: the body already is a chat request
    render_json: Callable[[Completion, ResponseContext], dict]
    stream_renderer: Callable[[ResponseContext], StreamRenderer]
    error_body: Callable[[ProxyError], dict]
    id_prefix: str
    relay_comments: bool = True  # write upstream SSE comments through (else: renderer keep-alive)


def error_response(err: ProxyError, body: dict) -> web.Response:
    return web.json_response(body, status=err.status, headers=err.headers(), dumps=_dumps)


def _dumps(obj: object) -> str:
    import orjson
    return orjson.dumps(obj).decode()


async def serve_generation(request: web.Request, protocol: Protocol, body: dict) -> web.StreamResponse:
    state: AppState = request.app[STATE_KEY]
    try:
        chat_body = protocol.to_chat(body) if protocol.to_chat else body
        creq, key, cc = state.prepare(chat_body, request.headers)
        ticket = await state.pipeline.open(key, creq, cc)
    except ProxyError as e:
        return error_response(e, protocol.error_body(e))
    headers = {"X-Cache-Status": ticket.status, "X-Cache-Key": key}
    if ticket.age is not None:
        headers["Age"] = str(int(ticket.age))
    request[CACHE_STATUS_KEY] = ticket.status
    ctx = ResponseContext(response_id=protocol.id_prefix + secrets.token_hex(12), created=int(time.time()),
                          model=state.settings.served_model, include_usage=creq.include_usage,
                          client_request=body)
    try:
        if not creq.client_stream:
            try:
                completion = await ticket.result()
            except ProxyError as e:
                return error_response(e, protocol.error_body(e))
            return web.json_response(protocol.render_json(completion, ctx), headers=headers, dumps=_dumps)
        return await _stream(request, protocol, ticket, ctx, headers, state.settings.keepalive_interval)
    finally:
        ticket.release()


async def _stream(request: web.Request, protocol: Protocol, ticket, ctx: ResponseContext,
                  headers: dict[str, str], keepalive: float) -> web.StreamResponse:
    renderer = protocol.stream_renderer(ctx)
    head = renderer.head()  # first: renderers number their events in the order they make them
    resp = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def send(parts: list[bytes]) -> None:
        if not resp.prepared:
            await resp.prepare(request)
            await resp.write(b"".join(head))
        if parts:
            await resp.write(b"".join(parts))

    items = ticket.items().__aiter__()
    pending: asyncio.Future | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(items.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=keepalive)
            if not done:
                await send([renderer.keepalive()])
                continue
            fut, pending = pending, None
            try:
                item = fut.result()
            except StopAsyncIteration:
                break
            if isinstance(item, Comment):
                await send([encode_comment(item.text) if protocol.relay_comments else renderer.keepalive()])
            else:
                await send(renderer.render(item))
    except ProxyError as e:
        if not resp.prepared:
            return error_response(e, protocol.error_body(e))
        await resp.write(b"".join(renderer.fail(e)))
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await items.aclose()
    if not resp.prepared:
        await send([])
    await resp.write_eof()
    return resp
