"""Upstream admission: at most N generations at once, a bounded two-class queue beyond that.

mlx_lm.server resets connections beyond its listen backlog of 5, so the proxy, not the
server's socket, is where requests wait. Interactive requests go before background ones
(Claude Code's title generation, `Warmup`, tiny max_tokens), FIFO within a class. A waiter
that is cancelled (its client left) leaves the queue at once.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ..config import RETRY_AFTER
from ..errors import ProxyError

INTERACTIVE, BACKGROUND = 0, 1
# How much of a message's text the background patterns read: Claude Code's warm-up is one word,
# its title and topic prompts say so in their first sentence.
CLASSIFY_CHARS = 2048
CLASS_NAMES = {INTERACTIVE: "interactive", BACKGROUND: "background"}


@dataclass(frozen=True)
class Classifier:
    """Decides a request's class from its canonical chat body (pure)."""
    patterns: tuple[re.Pattern[str], ...]
    max_tokens_at_most: int

    @classmethod
    def build(cls, patterns: tuple[str, ...], max_tokens_at_most: int) -> Classifier:
        return cls(tuple(re.compile(p) for p in patterns), max_tokens_at_most)

    def classify(self, body: dict) -> int:
        """From the few fields that decide it: the answer's size, and the opening of the first
        and last messages (a warm-up or a title prompt says what it is at once; an agent turn's
        50 KB system prompt is never read past its opening)."""
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens <= self.max_tokens_at_most:
            return BACKGROUND
        messages = body.get("messages") or []
        texts = [m.get("content") for m in messages[:1] + messages[-1:] if isinstance(m, dict)]
        for text in texts:
            if isinstance(text, str) and any(p.search(text, 0, CLASSIFY_CHARS) for p in self.patterns):
                return BACKGROUND
        return INTERACTIVE


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future = field(compare=False)
    enqueued: float = field(compare=False, default=0.0)


class Admission:
    def __init__(self, max_concurrency: int, max_queue: int, retry_after: int = RETRY_AFTER) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.retry_after = retry_after
        self.running = 0
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()
        self.total_wait = 0.0
        self.admitted = 0
        self.rejected = 0
        self.max_wait = 0.0
        self._idle: asyncio.Event | None = None  # set while nothing runs (made in the loop, when asked)

    def set_capacity(self, max_concurrency: int) -> None:
        """A new cap (once the upstream says what it takes); waiters move up into new slots."""
        self.max_concurrency = max(1, max_concurrency)
        while self.running < self.max_concurrency and self._grant_next():
            pass

    async def wait_idle(self) -> None:
        """Until no generation holds a slot (a pool member's warm-ups wait for this)."""
        while self.running:
            if self._idle is None:
                self._idle = asyncio.Event()
            self._idle.clear()
            await self._idle.wait()

    @property
    def queued(self) -> int:
        return sum(1 for w in self._heap if not w.future.done())

    @asynccontextmanager
    async def slot(self, priority: int = INTERACTIVE) -> AsyncIterator[float]:
        """Hold one upstream slot; yields the seconds spent waiting for it."""
        waited = await self._acquire(priority)
        try:
            yield waited
        finally:
            self._release()

    async def _acquire(self, priority: int) -> float:
        if self.running < self.max_concurrency and not self.queued:
            self.running += 1
            self._admit(0.0)
            return 0.0
        if self.queued >= self.max_queue:
            self.rejected += 1
            raise ProxyError("queue_full", "the upstream queue is full; retry shortly",
                             retry_after=self.retry_after)
        w = _Waiter(priority, next(self._seq), asyncio.get_running_loop().create_future(), time.monotonic())
        heapq.heappush(self._heap, w)
        try:
            await w.future
        except asyncio.CancelledError:
            if w.future.done() and not w.future.cancelled():
                self._release()  # the slot was granted just as we were cancelled: pass it on
            raise
        waited = time.monotonic() - w.enqueued
        self._admit(waited)
        return waited

    def _admit(self, waited: float) -> None:
        self.admitted += 1
        self.total_wait += waited
        self.max_wait = max(self.max_wait, waited)

    def _release(self) -> None:
        self.running -= 1
        if self.running < self.max_concurrency:
            self._grant_next()
        if not self.running and self._idle is not None:
            self._idle.set()

    def _grant_next(self) -> bool:
        """Hand a free slot to the first live waiter; False when none waits."""
        while self._heap:
            w = heapq.heappop(self._heap)
            if not w.future.done():
                self.running += 1
                w.future.set_result(None)
                return True
        return False

    def to_json(self) -> dict:
        by_class = {name: 0 for name in CLASS_NAMES.values()}
        for w in self._heap:
            if not w.future.done():
                by_class[CLASS_NAMES[w.priority]] += 1
        return {"running": self.running, "queued": self.queued, "queued_by_class": by_class,
                "max_concurrency": self.max_concurrency, "max_queue": self.max_queue,
                "admitted": self.admitted, "rejected": self.rejected,
                "avg_wait_s": round(self.total_wait / self.admitted, 3) if self.admitted else 0.0,
                "max_wait_s": round(self.max_wait, 3)}
