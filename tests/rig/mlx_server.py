"""Fixtures running the REAL stock mlx_lm.server, through the launcher's own Supervisor.

    def test_x(mlx_server):                 # tiny-random model, session-wide
        requests.post(mlx_server.url + "/v1/chat/completions", ...)

    def test_y(mlx_tool_server):            # deterministic tool-calling model
        srv = mlx_tool_server("json")       # or "xml", "raw"; one server per variant per session
        srv.model.case("weather_paris").reply

    def test_z(mlx_server_factory):         # a private server for fault tests (kill, stop)
        srv = mlx_server_factory()          # stopped at session end

Each server runs under a Supervisor in a background thread with its own event loop, so the
fixtures are plain sync objects usable from sync and async tests alike, and a killed child is
restarted exactly as `mlx-launch` would restart it.
"""
from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from launcher.cli import free_port
from launcher.config import LaunchConfig
from launcher.models import resolve_model
from launcher.supervisor import Supervisor
from proxy.upstream.status import UpstreamStatus
from tests.rig.tool_model import ToolModel, build_tool_model_cached

# Fault tests should see restarts quickly: the production 1 s initial backoff is kept short.
TEST_BACKOFF_INITIAL = 0.2
TEST_BACKOFF_MAX = 2.0
# The tiny models load in ~1-3 s; a loaded CI box may need more.
TEST_READY_TIMEOUT = 120.0
# A killed child is reaped and noticed within milliseconds; this only bounds a broken case.
NOTICE_TIMEOUT = 10.0
# Fault tests that stop the child need it gone promptly.
TEST_TERM_TIMEOUT = 5.0


class MlxServer:
    """One supervised stock mlx_lm.server. Attributes: url, port, model_path, pid, status (the
    UpstreamStatus the supervisor moves; it lives in this server's own event loop, so give a
    ProxyServer under test its own), model (the ToolModel for tool-model servers)."""

    def __init__(self, model_path: str | Path, extra_args: tuple[str, ...] = (),
                 model: ToolModel | None = None) -> None:
        self.model_path = str(model_path)
        self.model = model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cfg = LaunchConfig(model=self.model_path, model_path=self.model_path, server_port=self.port,
                                extra_args=extra_args, offline=True, ready_timeout=TEST_READY_TIMEOUT,
                                term_timeout=TEST_TERM_TIMEOUT, backoff_initial=TEST_BACKOFF_INITIAL,
                                backoff_max=TEST_BACKOFF_MAX, max_restarts=0)
        self.status = UpstreamStatus(state="starting")
        self._loop = asyncio.new_event_loop()
        # The thread lives as long as the server: the child's parent-death signal follows it.
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"mlx-server-{self.port}",
                                        daemon=True)
        self._thread.start()
        self.supervisor: Supervisor = self._call(self._make_supervisor())
        self._supervising: Future | None = None

    # --- control ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.supervisor.pid

    @property
    def running(self) -> bool:
        return self._supervising is not None and not self._supervising.done()

    def start(self) -> None:
        """Start (after stop()) and supervise; returns once a 1-token completion succeeds."""
        if self.running:
            return
        self._call(self.supervisor.start())
        self._supervising = asyncio.run_coroutine_threadsafe(self.supervisor.supervise(), self._loop)

    def wait_ready(self, timeout: float = TEST_READY_TIMEOUT) -> None:
        """Block until the (re)started child serves again."""
        if not self._call(self.status.wait_serving(timeout)):
            raise TimeoutError(f"mlx_lm.server not serving after {timeout} s: {self.status.to_json()}")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Signal the child as a crash would and wait until the supervisor has noticed (it then
        restarts it; wait_ready() waits for that). Returns the old pid."""
        pid = self.pid
        assert pid is not None, "server is not running"
        os.kill(pid, sig)
        self._wait_noticed(f"signal {sig} to pid {pid}")
        return pid

    def request_restart(self, cause: str = "test") -> int:
        """The watchdog's hook: restart the child, counting `cause`. Returns the old pid."""
        pid = self.pid
        assert pid is not None, "server is not running"
        self._loop.call_soon_threadsafe(self.supervisor.request_restart, cause)
        self._wait_noticed(f"restart request ({cause})")
        return pid

    def _wait_noticed(self, what: str) -> None:
        deadline = time.monotonic() + NOTICE_TIMEOUT
        while self.status.serving:
            if time.monotonic() > deadline:
                raise TimeoutError(f"supervisor did not notice {what}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the child and its supervision (start() brings it back)."""
        self._call(self.supervisor.stop())
        if self._supervising is not None:
            self._supervising.result(timeout=30)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # --- internals ------------------------------------------------------------------------
    async def _make_supervisor(self) -> Supervisor:
        return Supervisor(self.cfg, self.status)  # built in the loop: it owns asyncio objects

    def _call(self, coro, timeout: float = TEST_READY_TIMEOUT + 30):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def __repr__(self) -> str:
        return f"MlxServer({self.url}, pid={self.pid}, model={self.model_path})"


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    """The tiny-random model folder (built once per machine)."""
    return resolve_model("tiny-random").path


@pytest.fixture(scope="session")
def mlx_server_factory(tiny_model_path: str) -> Iterator[Callable[..., MlxServer]]:
    """Start private servers (default: tiny-random); all are stopped at session end."""
    servers: list[MlxServer] = []

    def start(model_path: str | Path | None = None, extra_args: tuple[str, ...] = (),
              model: ToolModel | None = None) -> MlxServer:
        server = MlxServer(model_path or tiny_model_path, extra_args, model)
        servers.append(server)  # closed at session end even if its start fails
        server.start()
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def mlx_server(mlx_server_factory) -> MlxServer:
    """The shared tiny-random server. Tests that stop or kill it must use a private one."""
    return mlx_server_factory()


@pytest.fixture(scope="session")
def tool_model() -> ToolModel:
    return build_tool_model_cached()


@pytest.fixture(scope="session")
def mlx_tool_server(mlx_server_factory, tool_model: ToolModel) -> Callable[[str], MlxServer]:
    """`mlx_tool_server(variant)`: the tool model's json/xml/raw variant, one per session."""
    started: dict[str, MlxServer] = {}

    def get(variant: str = "json") -> MlxServer:
        if variant not in started:
            started[variant] = mlx_server_factory(tool_model.path(variant), model=tool_model)
        server = started[variant]
        if not server.running:
            server.start()
        return server

    return get


__all__ = ["MlxServer", "mlx_server", "mlx_server_factory", "mlx_tool_server", "tool_model",
           "tiny_model_path"]
