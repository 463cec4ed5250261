"""A real redis-server for tests: free port, temporary directory, stop / kill -9 / pause / restart.

Fault tests need the real thing: a refused connection after `kill()`, a socket that hangs after
`pause()` (SIGSTOP), a server that comes back on the same port after `restart()` with an empty
script cache. fakeredis can show none of these.

Fixtures:
- `redis_server`: a fresh server per test (a start costs ~10 ms), free to kill and restart.
- `redis_tls_server`: the same behind TLS only (`rediss://` URL carrying its CA file). The
  self-signed certificate for 127.0.0.1 is shipped in certs/ (valid until 2126), so no tool is
  needed to make one; it was made with
  `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 36500
   -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout redis-test.key -out redis-test.crt`.
- `running_server(tls=..., persist=...)`: the context manager behind them, for other variants
  (persist: an AOF fsynced on every write, so data survives even kill -9).
- `redis_shared`: one server for the whole session, emptied (FLUSHALL) before each test that
  uses it; for tests that only need a working Redis. Never kill it.

Control methods are synchronous (usable from sync tests); `astart`/`arestart` run them in a
thread for async tests that keep other tasks going on the loop meanwhile.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from launcher.cli import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
# Generous for 2 shared cores; a healthy start takes ~10 ms.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PING_TIMEOUT = 0.5
CERTS = Path(__file__).parent / "certs"


def _command(port: int, *args: str, tls: ssl.SSLContext | None = None, timeout: float = PING_TIMEOUT) -> bytes:
    """Send one command in RESP and return the raw first reply (enough for PING / FLUSHALL)."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with (tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw) as s:
            s.sendall(payload)
            return s.recv(4096)


class RedisServer:
    """One redis-server process on a fixed port; can be stopped and started again on that port."""

    def __init__(self, workdir: Path, port: int | None = None, persist: bool = False, tls: bool = False) -> None:
        self.dir = workdir
        self.port = port or free_port()
        self.persist = persist
        self.proc: subprocess.Popen | None = None
        self.cert = CERTS / "redis-test.crt" if tls else None
        self._tls = ssl.create_default_context(cafile=str(self.cert)) if tls else None

    @property
    def url(self) -> str:
        if self.cert is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={quote(str(self.cert))}"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _argv(self) -> list[str]:
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"), "--daemonize", "no", "--protected-mode", "no"]
        # Persistence, when asked, survives even kill -9: every write is fsynced to the AOF.
        argv += (["--appendonly", "yes", "--appendfsync", "always"] if self.persist
                 else ["--save", "", "--appendonly", "no"])
        if self.cert is not None:
            argv += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.cert),
                     "--tls-key-file", str(CERTS / "redis-test.key"), "--tls-ca-cert-file", str(self.cert),
                     "--tls-auth-clients", "no"]
        return argv

    def start(self) -> None:
        if self.running:
            raise RuntimeError("redis-server already running")
        self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                if _command(self.port, "PING", tls=self._tls).startswith(b"+PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.005)
        self.kill()
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}: {self.log_tail()}")

    def _signal_and_wait(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.resume()  # a paused process ignores SIGTERM until continued
            self.proc.send_signal(sig)
            self.proc.wait(STOP_TIMEOUT)
        self.proc = None

    def stop(self) -> None:
        """Clean shutdown (SIGTERM)."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """Abrupt death (SIGKILL): clients see their connections reset."""
        self._signal_and_wait(signal.SIGKILL)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections (kernel backlog) but nothing answers."""
        if self.running:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def arestart(self) -> None:
        await asyncio.to_thread(self.restart)

    def flushall(self) -> None:
        if not _command(self.port, "FLUSHALL", tls=self._tls).startswith(b"+OK"):
            raise RuntimeError("FLUSHALL failed")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.dir / "redis.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


@contextmanager
def running_server(tls: bool = False, persist: bool = False) -> Iterator[RedisServer]:
    """A started server in its own temporary directory, killed and removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="redis-rig-"))
    server = RedisServer(workdir, tls=tls, persist=persist)
    try:
        for attempt in range(3):  # a free port can be taken by someone else between bind() and start
            try:
                server.start()
                break
            except RuntimeError:
                if attempt == 2:
                    raise
                server.port = free_port()
        yield server
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def redis_tls_server() -> Iterator[RedisServer]:
    with running_server(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def _redis_session_server() -> Iterator[RedisServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def redis_shared(_redis_session_server: RedisServer) -> RedisServer:
    if not _redis_session_server.running:  # a test broke the rule; give the next one a server
        _redis_session_server.start()
    _redis_session_server.flushall()
    return _redis_session_server
