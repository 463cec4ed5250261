"""Runs the stock mlx_lm.server as a child: start, wait until it really serves, restart it
when it dies, stop it cleanly. Moves the shared `UpstreamStatus` through its states so the
proxy can answer 503 + Retry-After meanwhile.

mlx_lm.server answers /health before its model is loaded and stays alive after fatal start-up
errors, so readiness is a successful 1-token completion and failures are read from its output.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from contextlib import suppress

import aiohttp

from proxy.upstream.status import UpstreamStatus

from . import config as defaults
from .config import LaunchConfig
from .probe import probe_completion
from .policy import (STOPPED_STATES, LineKind, backoff_delay, child_env, classify_line, listening_inodes,
                     proc_stat_state, retry_after_seconds, server_args, waiting_for)

log = logging.getLogger("mlx_launch")
child_log = logging.getLogger("mlx_launch.server")

# The readiness probe: the smallest request that needs the model loaded and generating.
# Relayed child lines are cut here: the server echoes whole request bodies on JSON errors,
# and prompt text must not reach the logs.
RELAY_MAX_CHARS = 500
_READ_CHUNK = 65536


class LaunchError(RuntimeError):
    """The server cannot be brought up: the launcher reports it and exits non-zero."""


class Supervisor:
    def __init__(self, cfg: LaunchConfig, status: UpstreamStatus, python: str = sys.executable) -> None:
        self.cfg = cfg
        self.status = status
        self.python = python
        self.url = f"http://{defaults.CHILD_HOST}:{cfg.server_port}"
        self.last_load_seconds: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._fatal: str | None = None  # reason read from the current child's output
        self._seen: set[LineKind] = set()
        self._tail: deque[str] = deque(maxlen=defaults.FAILURE_TAIL_LINES)
        self._wake = asyncio.Event()  # child exited, said something fatal, restart or stop asked
        self._restart_cause: str | None = None
        self._stopping = False
        self._spawned_at = 0.0
        self._ready_at = 0.0
        status.managed = True

    # --- public ---------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def child_stopped(self) -> bool:
        """Whether the running child is stopped (SIGSTOP): the watchdog's signal of a wedge that
        no generation's silence may show yet (a prefill is allowed long silences)."""
        pid = self.pid
        return pid is not None and process_state(pid) in STOPPED_STATES

    async def start(self) -> bool:
        """First start (or a start after stop()). False if stop() came first; LaunchError if
        the server cannot serve."""
        self._stopping = False
        self.status.set("starting", "launching mlx_lm.server")
        return await self._start_child()

    async def supervise(self) -> None:
        """Until stop(): restart the child, with backoff, whenever it stops serving."""
        failures = 0
        while True:
            cause = await self._next_trouble()
            if cause is None:
                return
            if time.monotonic() - self._ready_at >= self.cfg.backoff_reset_after:
                failures = 0
            while True:
                failures += 1
                if self.cfg.max_restarts and failures > self.cfg.max_restarts:
                    self.status.set("failed", f"gave up after {failures - 1} restarts in a row ({cause})")
                    raise LaunchError(f"mlx_lm.server keeps failing ({cause}); gave up after "
                                      f"{failures - 1} restarts in a row" + self._tail_text())
                delay = backoff_delay(failures, self.cfg.backoff_initial, self.cfg.backoff_max)
                self.status.retry_after = retry_after_seconds(delay, self.last_load_seconds)
                self.status.record_restart(cause)
                self.status.set("restarting", f"{cause}; restarting in {delay:g} s")
                log.warning("mlx_lm.server stopped serving (%s); restart %d in %g s", cause, failures, delay)
                await self._terminate_child()
                if await self._stop_requested_within(delay):
                    return
                try:
                    if not await self._start_child():
                        return
                    break
                except LaunchError as e:
                    log.error("restart failed: %s", e)
                    cause = "start_failed"

    def request_restart(self, cause: str) -> None:
        """Hook for the proxy (e.g. a wedge watchdog): restart the child, counting `cause`."""
        self._restart_cause = cause
        self._wake.set()

    async def stop(self) -> None:
        """SIGTERM the child (SIGKILL after the timeout). Callers drain the proxy first."""
        self._stopping = True
        self._wake.set()
        await self._terminate_child()
        self.status.set("stopped", "launcher stopping")

    # --- one child's life -----------------------------------------------------------------
    async def _start_child(self) -> bool:
        self._spawned_at = time.monotonic()
        if port_in_use(defaults.CHILD_HOST, self.cfg.server_port):
            raise LaunchError(f"port {self.cfg.server_port} is already in use by another program; the launcher "
                              "will not serve (or cache) another server's answers as its own. Choose another "
                              "--server-port, or leave it out for a free one")
        await self._spawn()
        try:
            ready = await self._wait_ready()
            if ready:
                self._check_listener_is_the_child()
        except LaunchError:
            await self._terminate_child()
            raise
        if ready:
            self.last_load_seconds = time.monotonic() - self._spawned_at
            self._ready_at = time.monotonic()
            self.status.set("ready", f"mlx_lm.server pid {self.pid}")
            log.info("mlx_lm.server ready in %.1f s (pid=%s port=%d)", self.last_load_seconds,
                     self.pid, self.cfg.server_port)
        return ready

    async def _spawn(self) -> None:
        args = server_args(self.cfg.model_path, defaults.CHILD_HOST, self.cfg.server_port, self.cfg.extra_args)
        self._fatal, self._restart_cause = None, None
        self._seen.clear()
        self._tail.clear()
        self._wake.clear()
        # Its own session: a terminal's Ctrl-C reaches only the launcher, which drains first.
        # stdin is the orphan guard's pipe: kept open, never written.
        self._proc = await asyncio.create_subprocess_exec(
            self.python, "-m", "launcher.mlx_lm_server", *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=child_env(os.environ, self.cfg.offline), start_new_session=True)
        log.info("started mlx_lm.server pid=%d port=%d: mlx_lm.server %s", self._proc.pid,
                 self.cfg.server_port, " ".join(args))
        self._relay = asyncio.create_task(self._relay_output(self._proc))

    def _check_listener_is_the_child(self) -> None:
        """What answered the readiness probe must be our child, not a server that took the
        port in between (on Linux, from /proc; elsewhere the port check before the start)."""
        owners = listening_pids(self.cfg.server_port)
        if owners is not None and self._proc is not None and self._proc.pid not in owners:
            raise LaunchError(f"another program (pid {', '.join(map(str, sorted(owners))) or '?'}) answers on "
                              f"port {self.cfg.server_port}, not mlx_lm.server pid {self._proc.pid}")

    async def _relay_output(self, proc: asyncio.subprocess.Process) -> None:
        """Prefix and relay the child's lines; note the ones that say how start-up goes."""
        assert proc.stdout is not None
        pending = b""
        while chunk := await proc.stdout.read(_READ_CHUNK):
            *lines, pending = (pending + chunk).split(b"\n")
            for raw in lines:
                self._on_line(raw.decode(errors="replace").rstrip())
            if len(pending) > RELAY_MAX_CHARS:  # a huge unterminated line: keep only its start
                pending = pending[:RELAY_MAX_CHARS]
        if pending:
            self._on_line(pending.decode(errors="replace").rstrip())
        await proc.wait()
        self._wake.set()

    def _on_line(self, line: str) -> None:
        shown = line if len(line) <= RELAY_MAX_CHARS else line[:RELAY_MAX_CHARS] + " [...]"
        child_log.info("%s", shown)
        self._tail.append(shown)
        verdict = classify_line(line)
        self._seen.add(verdict.kind)
        if verdict.kind is LineKind.FATAL and self._fatal is None:
            self._fatal = verdict.reason
            self._wake.set()

    async def _wait_ready(self) -> bool:
        """Probe with 1-token completions until one succeeds; report progress meanwhile."""
        deadline = self._spawned_at + self.cfg.ready_timeout
        next_progress = time.monotonic() + defaults.PROGRESS_INTERVAL
        connected = False
        async with aiohttp.ClientSession() as session:
            probe: asyncio.Task[int] | None = None
            try:
                while True:
                    if self._stopping:
                        return False
                    self._raise_if_failed()
                    now = time.monotonic()
                    if now >= deadline:
                        raise LaunchError(f"mlx_lm.server not ready after {self.cfg.ready_timeout:g} s "
                                          f"(still waiting for {self._waiting_for(connected)})" + self._tail_text())
                    if probe is None:
                        probe = asyncio.create_task(probe_completion(session, self.url, deadline - now))
                    await asyncio.wait([probe], timeout=defaults.READY_POLL_INTERVAL)
                    if probe.done():
                        code = probe.result()
                        connected = connected or code > 0  # an HTTP answer, even an error
                        if code == 200:
                            return True
                        probe = None
                        await asyncio.sleep(defaults.READY_POLL_INTERVAL)
                    if time.monotonic() >= next_progress:
                        next_progress += defaults.PROGRESS_INTERVAL
                        waited = time.monotonic() - self._spawned_at
                        if self.status.state in ("starting", "loading"):  # a restart stays "restarting"
                            self.status.set("loading", f"waiting for {self._waiting_for(connected)}")
                        log.info("waiting for %s (%.0f s)", self._waiting_for(connected), waited)
            finally:
                if probe is not None:
                    probe.cancel()

    def _waiting_for(self, connected: bool) -> str:
        return waiting_for(LineKind.LISTENING in self._seen, LineKind.DOWNLOADING in self._seen, connected)

    def _raise_if_failed(self) -> None:
        if self._fatal is not None:
            raise LaunchError(f"mlx_lm.server cannot serve: {self._fatal}" + self._tail_text())
        if self._proc is not None and self._proc.returncode is not None:
            raise LaunchError(f"mlx_lm.server exited with status {self._proc.returncode} during start-up"
                              + self._tail_text())

    def _tail_text(self) -> str:
        return "\n  last output:\n    " + "\n    ".join(self._tail) if self._tail else ""

    # --- waiting and stopping -------------------------------------------------------------
    async def _next_trouble(self) -> str | None:
        """Block until the running child needs a restart; its cause, or None when stopping."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return None
            if self._restart_cause is not None:
                return self._restart_cause
            if self._fatal is not None:
                return "generation_failed"
            if self._proc is not None and self._proc.returncode is not None:
                log.warning("mlx_lm.server pid=%d exited unexpectedly with status %d",
                            self._proc.pid, self._proc.returncode)
                return "exited"

    async def _stop_requested_within(self, delay: float) -> bool:
        end = time.monotonic() + delay
        while not self._stopping and (left := end - time.monotonic()) > 0:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        return self._stopping

    async def _terminate_child(self) -> None:
        """SIGTERM the child's process group, SIGKILL after the timeout; reap it."""
        proc, relay = self._proc, self._relay
        if proc is None:
            return
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            _signal_group(proc.pid, signal.SIGCONT)  # a stopped (SIGSTOP) child handles it too
            try:
                await asyncio.wait_for(proc.wait(), self.cfg.term_timeout)
            except asyncio.TimeoutError:
                log.warning("mlx_lm.server pid=%d ignored SIGTERM for %.0f s; killing it", proc.pid,
                            self.cfg.term_timeout)
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if relay is not None:
            await relay
        log.info("mlx_lm.server pid=%d exited with status %s", proc.pid, proc.returncode)


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port (bound as mlx_lm.server binds, SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def listening_pids(port: int) -> set[int] | None:
    """The processes listening on `port`, from /proc (Linux); None where that cannot be read."""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with suppress(FileNotFoundError), open(table) as f:
                inodes |= listening_inodes(f.read(), port)
        targets = {f"socket:[{i}]" for i in inodes}
        pids = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            with suppress(OSError):
                for fd in os.scandir(f"/proc/{entry.name}/fd"):
                    with suppress(OSError):
                        if os.readlink(fd.path) in targets:
                            pids.add(int(entry.name))
                            break
        return pids if inodes else None
    except OSError:
        return None


def process_state(pid: int) -> str:
    """The state letter of a process ("" if unknown): /proc on Linux, ps(1) elsewhere (macOS)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return proc_stat_state(f.read())
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return ""  # Linux, and the process is gone
    except (OSError, IndexError):
        return ""
    try:
        out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()[:1]


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
