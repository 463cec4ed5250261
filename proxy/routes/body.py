"""Reading a request body: bounded in size (aiohttp's client_max_size) and in time."""
from __future__ import annotations

import asyncio

from aiohttp import web

from ..errors import ProxyError
from ..normalize import parse_body
from .state import STATE_KEY


async def read_body(request: web.Request) -> bytes:
    """The whole body within the client body timeout (a slow-loris client gets a 408)."""
    timeout = request.app[STATE_KEY].settings.client_body_timeout
    try:
        async with asyncio.timeout(timeout):  # no extra task per request, unlike wait_for
            return await request.read()
    except TimeoutError:
        raise ProxyError("request_timeout", "the request body did not arrive in time") from None


async def read_json(request: web.Request) -> dict:
    """The body as a JSON object; 413 above the size limit, 400 for bad encoding or JSON."""
    return parse_body(await read_body(request))
