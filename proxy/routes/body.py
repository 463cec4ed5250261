"""Reading a request body: bounded in size (aiohttp's client_max_size) and in time, and
parsed off the event loop when it is big."""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..errors import ProxyError
from ..generation.offload import OFF_LOOP_BYTES, off_loop_if_big
from ..normalize import parse_body
from .state import STATE_KEY

# Set on a request whose body could not be read: the rest of it cannot be skipped either, so
# the connection closes after the answer (app.py's close_after_unreadable_body).
UNREADABLE_BODY_KEY = web.RequestKey("unreadable_body", bool)


async def read_body(request: web.Request) -> bytes | bytearray:
    """The whole body within the client body timeout (a slow-loris client gets a 408) and the
    size limit (413). A big body comes back as the bytearray it was read into: turning 60 MB
    into bytes is a copy that stalls the event loop for ~0.1 s. A compressed body that does not
    decompress is a 400."""
    settings = request.app[STATE_KEY].settings
    limit = settings.max_body_bytes
    request.content.set_read_chunk_size(limit)  # a compressed body decompresses in big pieces
    body = bytearray()
    try:
        async with asyncio.timeout(settings.client_body_timeout):  # no extra task, unlike wait_for
            while chunk := await request.content.readany():
                body.extend(chunk)
                if len(body) > limit:
                    raise ProxyError("request_too_large", f"request body exceeds the limit of {limit} bytes")
    except TimeoutError:
        raise ProxyError("request_timeout", "the request body did not arrive in time") from None
    except RequestPayloadError:  # a body that does not decompress, or broken chunked framing
        request[UNREADABLE_BODY_KEY] = True
        encoding = request.headers.get("Content-Encoding")
        why = f"does not decode as Content-Encoding: {encoding}" if encoding else "is malformed"
        raise ProxyError("invalid_encoding", f"request body {why}") from None
    return body if len(body) > OFF_LOOP_BYTES else bytes(body)


async def read_json(request: web.Request) -> dict:
    """The body as a JSON object; 413 above the size limits, 400 for bad encoding or JSON."""
    raw = await read_body(request)
    return await off_loop_if_big(raw, parse_body, raw)
