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

import orjson
from aiohttp import web

from ..cache.memo import Prepared
from ..cache.policy import CacheControl, parse_cache_control
from ..completion import Completion
from ..errors import ProxyError
from ..generation.pipeline import Ticket
from ..normalize import ChatRequest, parse_body
from ..server.logs import note_error
from ..sse import encode_comment
from ..translate.base import ResponseContext, StreamRenderer
from ..upstream.client import Comment
from .body import off_loop_if_big, read_body
from .state import CACHE_STATUS_HEADER, CACHE_STATUS_KEY, STATE_KEY, AppState


@dataclass(frozen=True)
class Protocol:
    name: str  # label for logs/metrics
    to_chat: Callable[[dict], dict] | None  # None: the body already is a chat request
    render_json: Callable[[Completion, ResponseContext], dict]
    stream_renderer: Callable[[ResponseContext], StreamRenderer]
    error_body: Callable[[ProxyError], dict]
    id_prefix: str
    relay_comments: bool = True  # write upstream SSE comments through (else: renderer keep-alive)
    renders_request: bool = False  # its responses echo the client's request (Responses does)
    announces_prompt_tokens: bool = False  # its stream's first event carries the prompt's size


# On a response whose tools the proxy wrote into the prompt (the served template drops them).
TOOL_PROMPT_HEADER = "X-Tool-Prompt"


def json_bytes_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers, content_type="application/json")


def error_response(err: ProxyError, body: dict, headers: dict[str, str] | None = None) -> web.Response:
    note_error(err.code)
    return json_bytes_response(body, err.status, {**err.headers(), **(headers or {})})


async def serve_protocol(request: web.Request, protocol: Protocol) -> web.StreamResponse:
    """The handler body of every generation endpoint."""
    try:
        raw = await read_body(request)
    except ProxyError as e:
        return error_response(e, protocol.error_body(e))
    return await serve_generation(request, protocol, raw)


async def serve_generation(request: web.Request, protocol: Protocol, raw: bytes | bytearray) -> web.StreamResponse:
    """A generation request from its raw body: a repeat of known bytes is answered from the
    cache without parsing (see proxy/cache/memo.py); everything else takes the full path."""
    state: AppState = request.app[STATE_KEY]
    status = "BYPASS"  # what the cache did, for an error answered before the pipeline could say
    try:
        await state.ensure_ready()
        cc = parse_cache_control(request.headers)
        digest = await off_loop_if_big(raw, state.memo.digest, protocol.name, cc.namespace, raw)
        prepared = state.memo.get(digest)
        looked_up = None
        if prepared is not None and cc.read:
            looked_up = await state.cache.lookup(prepared.key, cc.max_age)
            hit, status = looked_up
            if hit is not None:
                state.count_rules(prepared.rules_fired)
                body = await off_loop_if_big(raw, parse_body, raw) if protocol.renders_request else None
                return await _respond(request, protocol, state, Ticket(status, hit=hit), prepared, body, None)
        body, creq, key = await off_loop_if_big(raw, _prepare, state, protocol, raw, cc,
                                                prepared.key if prepared else None)
        state.count_rules(creq.rules_fired)
        prepared = Prepared(key, creq.client_stream, creq.include_usage, creq.rules_fired, creq.tool_prompt)
        state.memo.put(digest, prepared)
        if looked_up is None and cc.read:
            looked_up = await state.cache.lookup(key, cc.max_age)
            status = looked_up[1]
        ticket = await state.pipeline.open(key, creq, cc, looked_up)
    except ProxyError as e:
        request[CACHE_STATUS_KEY] = status
        return error_response(e, protocol.error_body(e))
    try:
        return await _respond(request, protocol, state, ticket, prepared, body, creq.upstream_body)
    finally:
        ticket.release()


def _prepare(state: AppState, protocol: Protocol, raw: bytes | bytearray, cc: CacheControl,
             key: str | None) -> tuple[dict, ChatRequest, str]:
    """Raw bytes to the client's body, the normalized chat request and its key (pure)."""
    body = parse_body(raw)
    chat_body = protocol.to_chat(body) if protocol.to_chat else body
    creq, key = state.prepare(chat_body, cc, key)
    return body, creq, key


async def _respond(request: web.Request, protocol: Protocol, state: AppState, ticket: Ticket,
                   prepared: Prepared, body: dict | None, prompt: dict | None) -> web.StreamResponse:
    """`prompt`: the chat request sent upstream (None for a hit served from the memo)."""
    headers = {CACHE_STATUS_HEADER: ticket.status, "X-Cache-Key": prepared.key}
    if prepared.tool_prompt:
        headers[TOOL_PROMPT_HEADER] = "injected"
    if ticket.age is not None:
        headers["Age"] = str(int(ticket.age))
    request[CACHE_STATUS_KEY] = ticket.status
    ctx = ResponseContext(response_id=protocol.id_prefix + secrets.token_hex(12), created=int(time.time()),
                          model=state.settings.served_model, include_usage=prepared.include_usage,
                          client_request=body,
                          prompt_tokens=await _known_prompt_tokens(state, ticket, prompt)
                          if prepared.client_stream and protocol.announces_prompt_tokens else None)
    if prepared.client_stream:
        return await _stream(request, protocol, ticket, ctx, headers, state.settings.keepalive_interval)
    try:
        completion = await ticket.result()
    except ProxyError as e:
        return error_response(e, protocol.error_body(e), headers)
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


async def _stream(request: web.Request, protocol: Protocol, ticket: Ticket, ctx: ResponseContext,
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
                    parts.append(encode_comment(item.text) if protocol.relay_comments else renderer.keepalive())
                else:
                    parts.extend(renderer.render(item))
            await send(parts)
    except ProxyError as e:
        if not resp.prepared:
            return error_response(e, protocol.error_body(e))
        note_error(e.code)
        await resp.write(b"".join(renderer.fail(e)))
    if not resp.prepared:
        await send([])
    await resp.write_eof()
    return resp
