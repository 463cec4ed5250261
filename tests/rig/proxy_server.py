"""The proxy under test, started on a free port in the background loop (real sockets)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from launcher.cli import free_port
from proxy.config import Settings
from proxy.server.app import ProxyServer
from proxy.upstream.status import UpstreamStatus


@dataclass
class RunningProxy:
    server: ProxyServer
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def state(self):
        from proxy.routes.state import STATE_KEY
        return self.server.app[STATE_KEY]

    @property
    def status(self) -> UpstreamStatus:
        return self.server.status


@pytest.fixture
def start_proxy(server_loop):
    """start_proxy(upstream_url, **settings) -> RunningProxy; stopped after the test."""
    started: list[RunningProxy] = []

    def start(upstream: str, status: UpstreamStatus | None = None, **overrides) -> RunningProxy:
        settings = replace(Settings(), upstream=upstream, port=free_port(), **overrides)
        server = ProxyServer(settings, status)
        server_loop.run(server.start())
        running = RunningProxy(server, settings)
        started.append(running)
        return running

    yield start
    for running in started:
        server_loop.run(running.server.stop(grace=1.0))
