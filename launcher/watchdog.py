"""Wedge watchdog: notices an mlx_lm.server whose HTTP side answers but whose generations make
no progress (mlx-lm#1505, #1909, #1834: `/health` stays green), and has it restarted.

Two signals, both about generation, never about /health:
  * in-flight generations silent (no token, no prefill keep-alive) for longer than the timeout;
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
from proxy.upstream_status import UpstreamStatus

from .supervisor import PROBE_BODY

log = logging.getLogger("mlx_launch.watchdog")

# With nothing generating, probe this often: a wedge is found before the next user waits on it.
PROBE_IDLE_INTERVAL = 60.0


@dataclass(frozen=True)
class WatchdogPolicy:
    timeout: float  # generations may make no progress this long
    probe_idle_interval: float = PROBE_IDLE_INTERVAL

    @property
    def tick(self) -> float:
        """How often to look: a wedge is found within timeout + tick."""
        return max(0.05, min(self.timeout, self.probe_idle_interval) / 4)

    def verdict(self, silent_for: float | None, idle_for: float) -> str:
        """ok | restart | probe, from how long the longest in-flight generation has been
        silent (None: nothing in flight) and how long nothing has been generating."""
        if silent_for is not None:
            return "restart" if silent_for > self.timeout else "ok"
        return "probe" if idle_for >= self.probe_idle_interval else "ok"


class Generations(Protocol):
    """What the watchdog reads from (and does to) the proxy's generations."""

    def longest_silence(self) -> float | None: ...

    def idle_for(self) -> float: ...

    def abort_generations(self, error: ProxyError) -> int: ...


class Restarter(Protocol):
    def request_restart(self, cause: str) -> None: ...


class Watchdog:
    def __init__(self, policy: WatchdogPolicy, generations: Generations, supervisor: Restarter,
                 status: UpstreamStatus, upstream_url: str) -> None:
        self.policy = policy
        self.generations = generations
        self.supervisor = supervisor
        self.status = status
        self.upstream_url = upstream_url
        self._last_probe = time.monotonic()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                await asyncio.sleep(self.policy.tick)
                if not self.status.serving:
                    self._last_probe = time.monotonic()  # a fresh server gets a full interval
                    continue
                idle = min(self.generations.idle_for(), time.monotonic() - self._last_probe)
                verdict = self.policy.verdict(self.generations.longest_silence(), idle)
                if verdict == "restart":
                    self.restart(f"wedged: no progress for {self.policy.timeout:g} s")
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
        try:
            async with session.post(self.upstream_url + "/v1/chat/completions", json=PROBE_BODY,
                                    timeout=aiohttp.ClientTimeout(total=self.policy.timeout)) as resp:
                await resp.read()
                return resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False
