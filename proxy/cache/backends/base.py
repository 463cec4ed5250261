"""The small async interface every cache backend implements (memory, Redis, none).

The facade (`store.ResponseCache`) owns everything that is the same for all backends: the
circuit breaker, timeouts, counters, the wait loop of single-flight. A backend only stores,
fetches and coordinates; it raises on I/O failure and the facade fails open.

Single-flight across proxies is built from three primitives: a lease (who generates a key), an
entry (the result), and a wake-up (a notification that either changed). Followers wait for the
wake-up and re-check; polling covers lost notifications, and an expired lease with no entry
means the leader died and a follower takes over.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Protocol

from proxy.cache.entry import StoredEntry

# Followers re-check this often even without a notification (pub/sub message lost, subscriber
# reconnecting): the bound on how late a follower can be.
POLL_INTERVAL = 1.0
# Suffix of a key's lease (leases are not cached items: flush and counts skip them).
LEASE_SUFFIX = ":lease"
# Suffix of the events a leader relays while it generates (a Redis stream beside the entry).
EVENTS_SUFFIX = ":events"
# Suffix of the mark a follower in another proxy keeps while it follows a key: a leader
# relays its events only while one exists (nobody else reads them).
FOLLOWED_SUFFIX = ":followed"
# Suffixes of our bookkeeping beside an entry (never entries themselves).
BESIDE_SUFFIXES = (LEASE_SUFFIX, EVENTS_SUFFIX, FOLLOWED_SUFFIX)
# Relayed events outlive the last append by this long: a follower a few polls behind still
# reads them; a follower that comes later finds the stored entry instead.
EVENTS_TTL = 60.0


class CacheBackend(Protocol):
    name: str                    # "memory" | "redis" | "none": shown in /health
    enabled: bool                # False only for `--cache none`
    op_timeout: float | None     # bound for one request-path operation (None: in-process, instant)

    async def start(self) -> None: ...          # connect / check; may raise (the facade fails open)
    async def close(self) -> None: ...
    async def get(self, key: str) -> StoredEntry | None: ...
    # Wakes waiters; with `lease` (our token) also releases that lease in the same step.
    async def put(self, key: str, entry: StoredEntry, ttl: int, lease: str | None = None) -> None: ...
    async def delete(self, key: str) -> bool: ...
    async def flush(self) -> int: ...           # cached entries of ours removed
    async def counts(self) -> tuple[int, int | None]: ...  # (cached items, bytes if known)
    # Leases. acquire fails while the key has an entry or a live lease (and, when it succeeds,
    # drops what a dead leader relayed: a new leader starts from nothing); renew extends our
    # lease or re-takes an absent one (a restarted Redis forgot it); release wakes waiters.
    async def acquire_lease(self, key: str, token: str, ttl: float) -> bool: ...
    async def renew_lease(self, key: str, token: str, ttl: float) -> bool: ...
    async def release_lease(self, key: str, token: str) -> None: ...
    # (entry, lease alive); `follower_ttl`: also (re)mark the key followed for that long
    async def peek(self, key: str, follower_ttl: float | None = None) -> tuple[StoredEntry | None, bool]: ...
    def watch(self, key: str) -> AbstractAsyncContextManager[asyncio.Event]: ...
    # Team-wide counters: add our deltas, get the totals (None: the backend is not shared).
    async def add_stats(self, hits: int, misses: int) -> dict[str, int] | None: ...
    # Live relay of a generation to followers in other processes (wakes waiters on append).
    relays_events: bool
    async def append_events(self, key: str, payload: bytes, ttl: float) -> None: ...
    async def read_events(self, key: str, after: str) -> tuple[list[bytes], str]: ...  # new since `after`
    async def followed(self, key: str) -> bool: ...  # a follower elsewhere marked it (see peek)
    # Which pool upstream a conversation (its prefix digest) went to, for every proxy of the
    # team (in-process backends share nothing: None / no-op; the pool remembers locally too).
    async def get_route(self, digest: str, ttl: int) -> str | None: ...  # (and keep it `ttl` longer)
    async def set_route(self, digest: str, upstream: str, ttl: int) -> None: ...


class NoEventRelay:
    """In-process backends: every follower is in this process and reads the flight itself."""
    relays_events = False

    async def append_events(self, key: str, payload: bytes, ttl: float) -> None:
        return None

    async def read_events(self, key: str, after: str) -> tuple[list[bytes], str]:
        return [], after

    async def followed(self, key: str) -> bool:
        return False

    async def get_route(self, digest: str, ttl: int) -> str | None:
        return None

    async def set_route(self, digest: str, upstream: str, ttl: int) -> None:
        return None


class Waiters:
    """In-process wake-ups: key → the events of the tasks waiting for that key."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._events.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            events = self._events.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._events[key]

    def notify(self, key: str) -> None:
        for event in self._events.get(key, ()):
            event.set()

    def __len__(self) -> int:
        return len(self._events)
