"""What the proxy knows about its upstream's life: one small shared object.

The launcher (when it runs the proxy in its own process) moves it through its states; a bare
`mlx-proxy` leaves it `ready` and learns of failures from the requests themselves. The proxy
reads it to answer 503 + Retry-After while the model loads or restarts, and to fill `/health`.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from ..config import RETRY_AFTER

# States in which requests are held back with 503 + Retry-After instead of being forwarded.
NOT_SERVING = frozenset({"starting", "loading", "restarting", "failed", "stopped"})


@dataclass
class UpstreamStatus:
    state: str = "ready"  # starting | loading | ready | restarting | failed | stopped
    detail: str = ""  # what it is waiting for / why it failed (shown in /health and logs)
    restarts: int = 0
    restart_causes: Counter = field(default_factory=Counter)  # cause -> count
    retry_after: int = RETRY_AFTER  # seconds a client should wait while not serving
    since: float = field(default_factory=time.monotonic)
    managed: bool = False  # True when a launcher supervises the upstream
    _ready: asyncio.Event | None = field(default=None, repr=False)

    @property
    def serving(self) -> bool:
        return self.state not in NOT_SERVING

    def set(self, state: str, detail: str = "") -> None:
        self.state, self.detail, self.since = state, detail, time.monotonic()
        ev = self._ready_event()
        ev.set() if self.serving else ev.clear()

    def record_restart(self, cause: str) -> None:
        self.restarts += 1
        self.restart_causes[cause] += 1

    def _ready_event(self) -> asyncio.Event:
        if self._ready is None:
            self._ready = asyncio.Event()
            if self.serving:
                self._ready.set()
        return self._ready

    async def wait_serving(self, timeout: float) -> bool:
        """Wait until the upstream serves again (queued requests proceed after a restart)."""
        try:
            await asyncio.wait_for(self._ready_event().wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def to_json(self) -> dict:
        return {"state": self.state, "detail": self.detail, "managed": self.managed,
                "restarts": self.restarts, "restart_causes": dict(self.restart_causes),
                "state_seconds": round(time.monotonic() - self.since, 1)}
