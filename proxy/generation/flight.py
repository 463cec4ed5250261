"""One generation in flight, shared by every request that wants its result (single-flight).

The producer appends events as they arrive; any number of followers read them from the start
and then follow live, in batches of whatever has arrived (one write per batch, not per token),
so a request that joins late still gets the whole stream. A flight ends
once, with a completion or an error, and every follower sees that end.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from ..completion import Completion, Event
from ..errors import ProxyError
from ..upstream.client import Comment
from .admission import INTERACTIVE

if TYPE_CHECKING:
    from ..pool.member import Member

Item = Event | Comment


class Flight:
    def __init__(self, key: str, storable: bool, priority: int = INTERACTIVE) -> None:
        self.key = key
        self.storable = storable  # its result may be written to the cache
        self.priority = priority  # admission class: interactive or background
        self.items: list[Item] = []
        self.completion: Completion | None = None
        self.error: ProxyError | None = None
        self.followers = 0
        self.admitted = False  # holds an upstream slot (not just queued)
        self.member: Member | None = None  # the pool member it runs on, once admitted
        self.task: asyncio.Task | None = None
        self.last_activity = time.monotonic()  # last item from the upstream (the watchdog reads it)
        # No token yet and the upstream has not said its prefill is over: the watchdog gives a
        # prefilling generation the first-token budget, not the idle window.
        self.prefilling = True
        self.relay: Callable[[list[Item]], None] | None = None  # also sends items to other proxies
        self._changed = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.completion is not None or self.error is not None

    def push(self, item: Item) -> None:
        self.push_many([item])

    def push_many(self, items: list[Item]) -> None:
        """Items that arrived together: followers wake once for them."""
        if not items:
            return
        self.items.extend(items)
        self.last_activity = time.monotonic()
        if self.relay is not None:
            self.relay(items)
        self._wake()

    def complete(self, completion: Completion) -> None:
        if not self.done:
            self.completion = completion
            self._wake()

    def fail(self, error: ProxyError) -> None:
        if not self.done:
            self.error = error
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def batches(self, idle: float) -> AsyncIterator[list[Item]]:
        """Every item from the first, in batches of what is available; an empty batch after
        `idle` seconds without news (time for a keep-alive); the flight's error at the end."""
        i = 0
        while True:
            if i < len(self.items):
                batch, i = self.items[i:], len(self.items)
                yield batch
                continue
            if self.error is not None:
                raise self.error
            if self.completion is not None:
                return
            try:
                async with asyncio.timeout(idle):
                    await self._changed.wait()
            except TimeoutError:
                yield []

    async def result(self) -> Completion:
        while not self.done:
            await self._changed.wait()
        if self.error is not None:
            raise self.error
        assert self.completion is not None
        return self.completion
