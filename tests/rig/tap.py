"""A recording hop between a real client and the proxy: forwards every request as it came and
keeps its method, path, headers and JSON body, so tests can see what the client really sends."""
from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web

from launcher.cli import free_port

from .loop_thread import LoopThread

HOP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass
class Tapped:
    method: str
    path: str  # with the query string
    headers: dict
    body: dict | None


@dataclass
class Tap:
    target: str
    port: int = field(default_factory=free_port)
    seen: list[Tapped] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        self.seen.append(Tapped(request.method, request.path_qs, dict(request.headers), body))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.request(request.method, self.target + request.path_qs, data=raw,
                                       headers=headers) as resp:
                data = await resp.read()
                out = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_HEADERS}
                return web.Response(status=resp.status, body=data, headers=out)


@pytest.fixture
def tap(server_loop: LoopThread):
    """tap(target_url) -> Tap listening on a free port, stopped after the test."""
    runners: list[web.AppRunner] = []

    def start(target: str) -> Tap:
        t = Tap(target)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", t.handle)
        runner = web.AppRunner(app)
        server_loop.run(runner.setup())
        server_loop.run(web.TCPSite(runner, "127.0.0.1", t.port).start())
        runners.append(runner)
        return t

    yield start
    for runner in runners:
        server_loop.run(runner.cleanup())
