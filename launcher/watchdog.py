"""Wedge watchdog: notices an mlx_lm.server whose HTTP side answers but whose generations make
no progress (mlx-lm#1505, #1909, #1834: `/health` stays green), and has it restarted.

Three signals, all about generation, never about /health:
  * an in-flight generation silent (no token, no prefill keep-alive) for longer than its phase
    allows: the watchdog timeout once tokens flow, the first-token budget while the prompt is
    still being processed. mlx_lm.server reports prefill progress only once per
    --prefill-step-size chunk (2048 tokens: ~200 s at the ~10 tokens/s of a small model on a
    2-core CPU, minutes for a large model on a Mac), so a healthy prefill is often silent for
    longer than any idle window; its progress comment `keepalive N/N` ends the phase;
  * the child process stopped (SIGSTOP, state T) for the watchdog timeout, in any phase: a
    stopped server is found as fast in prefill as in decode;
  * when nothing is generating, a 1-token probe every so often that must finish in time.
On a verdict the in-flight requests fail at once with a retryable 503 (the SDKs and Claude Code
retry those), the supervisor restarts the child, and queued requests wait for it to serve again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from proxy.errors import ProxyError
from proxy.generation.pipeline import Silence
from proxy.upstream.status import UpstreamStatus

from .probe import probe_completion

log = logging.getLogger("mlx_launch.watchdog")

# With nothing generating, probe this often: a wedge is found before the next user waits on it.
PROBE_IDLE_INTERVAL = 60.0


@dataclass(frozen=True)
class WatchdogPolicy:
    timeout: float  # generations producing tokens may make no progress this long
    prefill_timeout: float = 0.0  # ...and prefilling ones this long (the first-token budget)
    probe_idle_interval: float = PROBE_IDLE_INTERVAL

    @property
    def tick(self) -> float:
        """How often to look: a wedge is found within its limit + tick."""
        return max(0.05, min(self.timeout, self.probe_idle_interval) / 4)

    def limit(self, silence: Silence) -> float:
        return max(self.timeout, self.prefill_timeout) if silence.prefilling else self.timeout

    def verdict(self, silences: list[Silence], idle_for: float, stopped_for: float = 0.0) -> str:
        """ok | restart | probe, from the in-flight generations' silences, how long nothing has
        been generating, and how long the child process has been stopped."""
        if stopped_for > self.timeout or any(s.seconds > self.limit(s) for s in silences):
            return "restart"
        if silences:
            return "ok"
        return "probe" if idle_for >= self.probe_idle_interval else "ok"


class Generations(Protocol):
    """What the watchdog reads from (and does to) the proxy's generations."""

    def silences(self) -> list[Silence]: ...

    def idle_for(self) -> float: ...

    def abort_generations(self, error: ProxyError) -> int: ...


class Restarter(Protocol):
    def request_restart(self, cause: str) -> None: ...

    def child_stopped(self) -> bool: ...


class Watchdog:
    def __init__(self, policy: WatchdogPolicy, generations: Generations, supervisor: Restarter,
                 status: UpstreamStatus, upstream_url: str) -> None:
        self.policy = policy
        self.generations = generations
        self.supervisor = supervisor
        self.status = status
        self.upstream_url = upstream_url
        self._last_probe = time.monotonic()
        self._stopped_since: float | None = None

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                await asyncio.sleep(self.policy.tick)
                now = time.monotonic()
                if not self.status.serving:
                    self._last_probe = now  # a fresh server gets a full interval
                    self._stopped_since = None
                    continue
                if not self.supervisor.child_stopped():
                    self._stopped_since = None
                elif self._stopped_since is None:
                    self._stopped_since = now
                stopped_for = 0.0 if self._stopped_since is None else now - self._stopped_since
                idle = min(self.generations.idle_for(), now - self._last_probe)
                verdict = self.policy.verdict(self.generations.silences(), idle, stopped_for)
                if verdict == "restart":
                    what = "process stopped" if stopped_for > self.policy.timeout else "no progress"
                    self.restart(f"wedged: {what} for {self.policy.timeout:g} s")
                elif verdict == "probe":
                    self._last_probe = time.monotonic()
                    if not await self._probe(session):
                        self.restart(f"wedged: 1-token probe failed within {self.policy.timeout:g} s")

    def restart(self, cause: str) -> None:
        log.error("mlx_lm.server %s; restarting it", cause)
        err = ProxyError("upstream_restarting", f"the model server stopped making progress ({cause}); "
                         "retry shortly", retry_after=self.status.retry_after)
        aborted = self.generations.abort_generations(err)
        if aborted:
            log.warning("failed %d in-flight generation(s) with a retryable error", aborted)
        self.supervisor.request_restart(cause)

    async def _probe(self, session: aiohttp.ClientSession) -> bool:
        return await probe_completion(session, self.upstream_url, self.policy.timeout) == 200
