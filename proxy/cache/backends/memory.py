"""In-process backend: an LRU bounded by bytes, with a TTL per entry, and local leases.

Entries are kept as `StoredEntry` objects (immutable), so a hit costs a dict lookup and no
decoding. The byte bound counts what an entry really holds: its key, its completion's JSON
(the strings dominate a completion's size) and a fixed per-entry overhead for the Python
objects around them.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from proxy.cache.backends.base import NoEventRelay, Waiters
from proxy.cache.entry import StoredEntry

# Per-entry memory beyond key and JSON: OrderedDict slot, tuple, StoredEntry, Completion, float
# and str headers. Measured with sys.getsizeof: the objects exceed the JSON length by ~370 bytes
# for a plain text answer and ~650 for one with a tool call.
ENTRY_OVERHEAD_BYTES = 512


def entry_size(key: str, entry: StoredEntry) -> int:
    return len(key.encode()) + len(entry.completion.to_json()) + ENTRY_OVERHEAD_BYTES


class MemoryBackend(NoEventRelay):
    name = "memory"
    enabled = True
    op_timeout = None

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[StoredEntry, float, int]] = OrderedDict()  # entry, expires, size
        self._bytes = 0
        self._leases: dict[str, tuple[str, float]] = {}  # key → (token, expires)
        self._waiters = Waiters()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live(self, key: str) -> StoredEntry | None:
        item = self._entries.get(key)
        if item is None:
            return None
        if item[1] <= self._clock():
            self._remove(key)
            return None
        return item[0]

    def _remove(self, key: str) -> bool:
        item = self._entries.pop(key, None)
        if item is None:
            return False
        self._bytes -= item[2]
        return True

    async def get(self, key: str) -> StoredEntry | None:
        entry = self._live(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: StoredEntry, ttl: int, lease: str | None = None) -> None:
        if lease is not None and self._lease_holder(key) == lease:
            del self._leases[key]
        self._remove(key)
        size = entry_size(key, entry)
        if size <= self.max_bytes:  # an entry larger than the whole cache is not kept
            self._entries[key] = (entry, self._clock() + ttl, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                self._remove(next(iter(self._entries)))
        self._waiters.notify(key)

    async def delete(self, key: str) -> bool:
        return self._remove(key)

    async def flush(self) -> int:
        n = len(self._entries)
        self._entries.clear()
        self._bytes = 0
        return n

    async def counts(self) -> tuple[int, int | None]:
        now = self._clock()
        for key in [k for k, (_, expires, _) in self._entries.items() if expires <= now]:
            self._remove(key)
        return len(self._entries), self._bytes

    def _lease_holder(self, key: str) -> str | None:
        lease = self._leases.get(key)
        if lease is None:
            return None
        if lease[1] <= self._clock():
            del self._leases[key]
            return None
        return lease[0]

    async def acquire_lease(self, key: str, token: str, ttl: float) -> bool:
        if self._live(key) is not None or self._lease_holder(key) is not None:
            return False
        self._leases[key] = (token, self._clock() + ttl)
        return True

    async def renew_lease(self, key: str, token: str, ttl: float) -> bool:
        if self._lease_holder(key) not in (token, None):
            return False
        self._leases[key] = (token, self._clock() + ttl)
        return True

    async def release_lease(self, key: str, token: str) -> None:
        if self._lease_holder(key) == token:
            del self._leases[key]
            self._waiters.notify(key)

    async def peek(self, key: str, follower_ttl: float | None = None) -> tuple[StoredEntry | None, bool]:
        return self._live(key), self._lease_holder(key) is not None

    @asynccontextmanager
    async def watch(self, key: str) -> AsyncIterator[asyncio.Event]:
        with self._waiters.watch(key) as event:
            yield event

    async def add_stats(self, hits: int, misses: int) -> dict[str, int] | None:
        return None
