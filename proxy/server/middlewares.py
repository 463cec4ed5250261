"""The middlewares and response hooks every request goes through (their order: proxy/server/app.py).

Handlers raise; `errors_middleware` is the one place that turns any error into an answer, in
the route's shape (`proxy.errors.error_body`), with the error's headers (Retry-After,
x-should-retry). The response hooks write what every answer says, errors included: what the
cache did (X-Cache-Status, X-Cache-Key) and whether the connection stays open.
"""
from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..errors import ProxyError, error_body
from ..routes.body import UNREADABLE_BODY_KEY
from ..routes.serve import json_bytes_response
from ..routes.state import CACHE_KEY_HEADER, CACHE_KEY_KEY, CACHE_STATUS_HEADER, CACHE_STATUS_KEY, STATE_KEY
from .connections import ConnectionGuard
from .logs import note_error

log = logging.getLogger("mlx_proxy")

# aiohttp's own HTTP errors, by status, as the proxy's error codes.
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def render_error(request: web.Request, err: ProxyError) -> web.Response:
    """The answer to an error: its status, its headers, a JSON body in the route's shape."""
    note_error(err.code)
    return json_bytes_response(error_body(request.path, err), err.status, err.headers())


def _as_proxy_error(request: web.Request, e: web.HTTPException) -> ProxyError:
    if isinstance(e, web.HTTPRequestEntityTooLarge):
        limit = request.app[STATE_KEY].settings.max_body_bytes
        return ProxyError("request_too_large", f"request body exceeds the limit of {limit} bytes")
    return ProxyError(_HTTP_ERROR_CODES.get(e.status, "invalid_request"), e.reason or "request rejected")


@web.middleware
async def errors_middleware(request: web.Request, handler) -> web.StreamResponse:
    """No traceback ever reaches a client: the proxy's errors, aiohttp's and bugs become JSON."""
    try:
        return await handler(request)
    except ProxyError as e:
        return render_error(request, e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return render_error(request, _as_proxy_error(request, e))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(request, ProxyError("internal_error", "internal error in the proxy"))


class InFlight:
    """Counts requests being served, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        self.count += 1
        self.idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


class ConnectionsRef:
    """The site's connection guard, known only once the site starts; its middleware tells it
    when a request's headers are in and when its response is out."""

    def __init__(self) -> None:
        self.guard: ConnectionGuard | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if self.guard is None:
            return await handler(request)
        self.guard.request_started(request.transport)
        try:
            return await handler(request)
        finally:
            self.guard.request_ended(request.transport)


async def add_cache_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response says what the cache did; one the cache never
    saw (an error before it, a passthrough, a probe) says BYPASS."""
    response.headers.setdefault(CACHE_STATUS_HEADER, request.get(CACHE_STATUS_KEY, "BYPASS"))
    key = request.get(CACHE_KEY_KEY)
    if key is not None:
        response.headers.setdefault(CACHE_KEY_HEADER, key)


async def close_after_unreadable_body(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: after a body that would not decode, the connection goes: what
    is left of the body cannot be skipped to find the next request. (aiohttp tries, fails
    again and logs it, rate-limited by logs.py; then it closes.)"""
    if request.get(UNREADABLE_BODY_KEY):
        response.force_close()
        response.headers["Connection"] = "close"  # the headers are built before this hook runs
