"""Transparent forwarding: any path the proxy does not own goes to the upstream as it came.

Method, body and end-to-end headers go up; status, end-to-end headers and the body come back
chunk by chunk as they arrive (SSE included, comments and all), never buffered whole.
"""
from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web

from ..errors import ProxyError, error_body
from ..server.logs import note_error
from ..sse import SSEDecoder, encode_json
from ..upstream.client import HOP_BY_HOP
from ..upstream.clocks import chunk_has_token
from .body import read_body
from .state import STATE_KEY, AppState

log = logging.getLogger("mlx_proxy.forward")


def end_to_end(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


def forwarded_request_headers(headers) -> dict[str, str]:
    """A client's headers as they go up: end to end, less Content-Encoding (aiohttp has
    already decompressed the body we read, so it goes up as it is now: plain)."""
    return {k: v for k, v in end_to_end(headers).items() if k.lower() != "content-encoding"}


async def forward(request: web.Request, path: str, body: bytes | None, counts_tokens: bool = False
                ) -> web.StreamResponse:
    """Forward the request; stream the answer back as it arrives, under the upstream clocks.
    `counts_tokens`: the answer is a generation (legacy completions), so only an event that
    carries generated text is progress; elsewhere any byte is."""
    state: AppState = request.app[STATE_KEY]
    client = state.pool.passthrough_member().client
    clock = client.clock()
    upstream = await client.open(clock, request.method, path, body, forwarded_request_headers(request.headers))
    try:
        headers = end_to_end(upstream.headers)
        resp = web.StreamResponse(status=upstream.status, headers=headers)
        await resp.prepare(request)
        progress = _token_progress() if counts_tokens and upstream.content_type == "text/event-stream" else None
        try:
            while chunk := await client.read_within(clock, upstream):
                if progress is None or progress(chunk):
                    clock.token(time.monotonic())
                await resp.write(chunk)
        except ProxyError as e:  # the upstream went silent or away mid-body: end ours the same way
            note_error(e.code)
            log.warning("forwarded answer of %s cut: %s", request.path, e.message)
            if upstream.content_type == "text/event-stream":  # an error event, as chat streams end
                await resp.write(encode_json(error_body(request.path, e)))
            return resp  # without write_eof: the client sees a truncated body
        await resp.write_eof()
        return resp
    finally:
        upstream.close()


def _token_progress():
    """A reader of an SSE body: for each piece, whether it completed an event with a token."""
    decoder = SSEDecoder()

    def progress(chunk: bytes) -> bool:
        found = False
        for ev in decoder.feed(chunk):
            if ev.data and ev.data.strip() != "[DONE]":
                try:
                    found = found or chunk_has_token(orjson.loads(ev.data))
                except orjson.JSONDecodeError:
                    pass
        return found

    return progress


async def passthrough(request: web.Request) -> web.StreamResponse:
    body = await read_body(request) if request.can_read_body else None
    return await forward(request, request.raw_path, body)
