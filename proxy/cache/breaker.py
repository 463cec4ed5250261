"""Circuit breaker for the cache backend: a pure state machine with an injected clock.

Why: with Redis down, every request would otherwise pay a connect timeout before bypassing the
cache. After a few consecutive failures the breaker opens and requests skip the cache at once;
after a pause it lets exactly one probe through; the probe's success closes it again, so hits
resume by themselves when Redis returns, without restarting the proxy.

Logs one line when the cache becomes unavailable and one when it recovers, never one per
request (the half-open probes of a long outage are logged at debug level).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

log = logging.getLogger(__name__)

# One timeout can be a blip (a GC pause, a busy Redis); three in a row is an outage.
FAILURE_THRESHOLD = 3
# Requests bypass for this long before one probe; short enough that hits come back within
# seconds of Redis returning, long enough that an outage costs one failed probe per pause.
RESET_AFTER = 5.0


class BreakerState(str, Enum):
    CLOSED = "closed"        # calls go through
    OPEN = "open"            # calls are refused until the pause is over
    HALF_OPEN = "half_open"  # one probe call is out; the others are refused


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int = FAILURE_THRESHOLD,
                 reset_after: float = RESET_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0          # consecutive failures while closed
        self._since = clock()      # when the current OPEN / HALF_OPEN period began

    def allow(self) -> bool:
        """Whether a call may go to the backend now (may move OPEN → HALF_OPEN: the probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self._clock() - self._since < self.reset_after:
            return False
        # Pause over: let one probe through. Also re-arms a HALF_OPEN whose probe never
        # reported (its task was cancelled), so the breaker cannot stay stuck half-open.
        self._move(BreakerState.HALF_OPEN, logging.DEBUG, "probing")
        return True

    def record_success(self) -> None:
        self.failures = 0
        if self.state is not BreakerState.CLOSED:
            self._move(BreakerState.CLOSED, logging.WARNING, "recovered, cache in use again")

    def record_failure(self, error: BaseException | str = "") -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._move(BreakerState.OPEN, logging.DEBUG, f"probe failed: {error}")
            return
        if self.state is BreakerState.OPEN:
            return  # a call that started before the breaker opened
        self.failures += 1
        if self.failures >= self.failure_threshold:
            self._move(BreakerState.OPEN, logging.WARNING,
                       f"unavailable after {self.failures} failures ({error}); bypassing the cache, "
                       f"probing every {self.reset_after:g}s")

    def _move(self, state: BreakerState, level: int, why: str) -> None:
        self.state = state
        self._since = self._clock()
        log.log(level, "cache backend %s %s: %s", self.name, state.value, why)
