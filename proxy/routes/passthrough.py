"""Transparent forwarding: any path the proxy does not own goes to the upstream as it came.

Method, body and end-to-end headers go up; status, end-to-end headers and the body come back
chunk by chunk as they arrive (SSE included, comments and all), never buffered whole.
"""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from ..errors import ProxyError
from ..upstream import HOP_BY_HOP
from .body import read_body
from .serve import error_response
from .state import STATE_KEY, AppState


def end_to_end(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}


async def relay(request: web.Request, path: str, body: bytes | None) -> web.StreamResponse:
    state: AppState = request.app[STATE_KEY]
    try:
        upstream = await state.upstream.request(request.method, path, body, end_to_end(request.headers))
    except ProxyError as e:
        return error_response(e, e.openai_body())
    try:
        headers = end_to_end(upstream.headers)
        resp = web.StreamResponse(status=upstream.status, headers=headers)
        await resp.prepare(request)
        try:
            async for chunk in upstream.content.iter_any():
                await resp.write(chunk)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            pass  # the upstream went away mid-body: end ours the same way (truncated)
        await resp.write_eof()
        return resp
    finally:
        upstream.release()


async def passthrough(request: web.Request) -> web.StreamResponse:
    body = await read_body(request) if request.can_read_body else None
    return await relay(request, request.raw_path, body)
