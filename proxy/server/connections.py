"""The proxy's listening socket: how many connections it keeps, and how long one may take to
send its request headers. Unauthenticated clients reach this layer, so it bounds what they hold.

  * A connection must finish its request headers within `client_header_timeout` (nginx's
    client_header_timeout does the same; aiohttp has no such clock): after it is accepted,
    and again after each response on a kept-alive connection. Otherwise it is closed.
  * At most `max_connections` connections at once, below the process's open-file limit, so an
    accept never fails for want of a descriptor (asyncio then logs every retry, and nothing
    else is answered: liveness probes time out). At the cap, the connection that has waited
    longest for its headers is closed to make room; only when none is waiting does the new
    connection go.
  * A request the HTTP parser rejects gets a JSON error body like every other error.
  * (Repeated low-level log lines, accept and parser errors, are rate-limited: logs.py.)
"""
from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from ..errors import ProxyError, error_body

# Descriptors left for everything but client connections (upstream and Redis connections,
# log files, the model's files).
FD_RESERVE = 64


def default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(16, soft - FD_RESERVE) if soft != resource.RLIM_INFINITY else 4096


class _Connection:
    """One client connection as the guard sees it, in front of aiohttp's handler: `busy` while a
    request is between its headers and its response; otherwise idle, and clocked from its first
    byte (or its opening) until the next request's headers are in."""

    def __init__(self, guard: ConnectionGuard, handler: RequestHandler) -> None:
        self.guard = guard
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.busy = 0
        self._deadline: asyncio.TimerHandle | None = None

    # the asyncio Protocol interface, passed on to aiohttp's handler
    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        if self.guard.admit(self):
            self.start_clock()
        self.handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self.busy and self._deadline is None:
            self.start_clock()
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.stop_clock()
        self.guard.forget(self)
        self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        self.handler.resume_writing()

    # told by the request middleware, through the guard
    def request_started(self) -> None:
        self.busy += 1
        self.stop_clock()
        self.guard.idle.pop(self, None)

    def request_ended(self) -> None:
        self.busy = max(0, self.busy - 1)
        if not self.busy:
            self.guard.idle[self] = None

    # the header clock
    def start_clock(self) -> None:
        self.stop_clock()
        self._deadline = asyncio.get_running_loop().call_later(self.guard.header_timeout, self.close)

    def stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def close(self) -> None:
        self.stop_clock()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class ConnectionGuard:
    """A protocol factory around aiohttp's (`runner.server`), for `loop.create_server`."""

    def __init__(self, factory: Callable[[], RequestHandler], max_connections: int,
                 header_timeout: float) -> None:
        self.factory = factory
        self.max_connections = max_connections or default_max_connections()
        self.header_timeout = header_timeout
        self.open: dict[asyncio.BaseTransport, _Connection] = {}
        self.idle: OrderedDict[_Connection, None] = OrderedDict()  # not busy; longest first
        self.evicted = 0
        self.refused = 0

    def __call__(self) -> _Connection:
        handler = self.factory()
        # aiohttp's handler has __slots__; a slot-less subclass only changes handle_error
        handler.__class__ = JsonErrorsRequestHandler
        return _Connection(self, handler)

    def admit(self, conn: _Connection) -> bool:
        """Make room for a new connection: at the cap, close the one idle longest; with none
        idle, close the newcomer."""
        if len(self.open) >= self.max_connections:
            if not self.idle:
                self.refused += 1
                conn.transport.close()
                return False
            oldest, _ = self.idle.popitem(last=False)
            self.evicted += 1
            oldest.close()
        self.open[conn.transport] = conn
        self.idle[conn] = None
        return True

    def forget(self, conn: _Connection) -> None:
        self.open.pop(conn.transport, None)
        self.idle.pop(conn, None)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self.open.get(transport)
        if conn is not None:
            conn.request_started()

    def request_ended(self, transport: asyncio.BaseTransport | None) -> None:
        conn = self.open.get(transport)
        if conn is not None:
            conn.request_ended()


class JsonErrorsRequestHandler(RequestHandler):
    """aiohttp's request handler, answering what its HTTP parser rejects in JSON."""

    __slots__ = ()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        return _json_error_response(self, request, status, exc, message)


def _json_error_response(self: RequestHandler, request, status: int, exc: BaseException | None,
                         message: str | None) -> web.StreamResponse:
    """aiohttp's parser-error answer, as JSON (the connection is closed afterwards)."""
    self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
    if request.writer.output_size > 0:
        raise ConnectionError("response already started; cannot send the error")
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    err = ProxyError("internal_error" if status >= 500 else "invalid_request", message or phrase)
    path = getattr(request, "path", "") or ""  # a request the parser gave up on may have none
    resp = web.Response(status=status, body=orjson.dumps(error_body(path, err)), content_type="application/json",
                        headers={"Connection": "close"})
    resp.force_close()
    return resp


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site, with the guard between the socket and aiohttp's protocol."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard_settings: tuple[int, float],
                 **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._guard_settings = guard_settings
        self.guard: ConnectionGuard | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)
        assert self._runner.server is not None
        self.guard = ConnectionGuard(self._runner.server, *self._guard_settings)
        self._server = await asyncio.get_running_loop().create_server(
            self.guard, self._host, self._port, backlog=self._backlog, reuse_address=self._reuse_address,
            reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
