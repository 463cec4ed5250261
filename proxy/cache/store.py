"""The response cache as the request pipeline sees it: one facade over any backend.

Everything that is the same for memory, Redis and none lives here, so the request path never
branches on the backend: fail-open (circuit breaker + a hard bound on each request-path
operation), the statuses HIT / MISS / ERROR / BYPASS, counters for /health, and the wait loop
of cross-process single-flight.

Fail open means: a backend that is down, slow or refused by the breaker costs a request at most
`redis_timeout`, and the request goes on without the cache (status ERROR; a lease call lets it
lead; a wait lets it take over). Nothing here raises to the pipeline for a backend failure.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from redis.exceptions import RedisError

from proxy.cache.backends.base import EVENTS_TTL, POLL_INTERVAL, CacheBackend
from proxy.cache.backends.disabled import DisabledBackend
from proxy.cache.backends.memory import MemoryBackend
from proxy.cache.backends.redis import RedisBackend
from proxy.cache.breaker import BreakerState, CircuitBreaker
from proxy.cache.entry import StoredEntry
from proxy.cache.keys import KEY_PREFIX
from proxy.completion import Completion
from proxy.config import Settings

log = logging.getLogger(__name__)

# Local hit/miss counts go to the team totals in Redis this often (never on the hit path: a
# hit stays one GET). The same tick probes an open breaker, so health recovers without traffic.
STATS_FLUSH_INTERVAL = 1.0
# What a backend raises when it is down or slow (redis-py's errors, sockets, our timeouts).
BACKEND_ERRORS = (RedisError, OSError, TimeoutError)

CacheStatus = Literal["HIT", "MISS", "ERROR", "BYPASS"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CacheHit:
    completion: Completion
    age: float  # seconds since stored (for Age and Cache-Control: max-age)


class BackendUnavailable(Exception):
    """The breaker is open, or the backend call failed or timed out (already counted)."""


def hit_rate(hits: int, misses: int) -> str:
    total = hits + misses
    return f"{100.0 * hits / total:.1f}%" if total else "0.0%"


def describe_backend_error(error: BaseException) -> str:
    """What a log line may say about a failed backend call: the error's class and the server's
    error code (OOM, READONLY, LOADING...), never its message: redis-py's pipeline errors quote
    the command with its arguments, a cache key and the entry's text."""
    reply = str(error).rpartition("caused error: ")[2]
    code = reply.split(" ", 1)[0]
    return f"{type(error).__name__} {code}" if code.isalpha() and code.isupper() else type(error).__name__


class BackendObserver:
    """Told of every backend call the cache makes (the metrics; without them, this no-op)."""

    def backend_call(self, backend: str, op: str, seconds: float, failure: str | None) -> None:
        """`failure`: None, "timeout" (the cache's own bound ran out) or "error"."""


class ResponseCache:
    def __init__(self, backend: CacheBackend, *, ttl: int, near: MemoryBackend | None = None,
                 near_ttl: int = Settings.cache_near_ttl, breaker: CircuitBreaker | None = None,
                 lease_ttl: float = Settings.cache_lease_ttl, lease_renew_interval: float | None = None,
                 poll_interval: float = POLL_INTERVAL, stats_flush_interval: float = STATS_FLUSH_INTERVAL,
                 wall_clock: Callable[[], float] = time.time, observer: BackendObserver | None = None) -> None:
        self.backend = backend
        self.observer = observer or BackendObserver()
        self.ttl = ttl
        # In-process copy of a shared backend's recent entries (see Settings.cache_near_ttl).
        self.near = near
        self.near_ttl = near_ttl
        self.breaker = breaker or CircuitBreaker(backend.name)
        self.lease_ttl = lease_ttl
        # the pipeline renews its lease this often: three renewals fit in one lease
        self.lease_renew_interval = lease_renew_interval or lease_ttl / 3
        self.poll_interval = poll_interval
        self.stats_flush_interval = stats_flush_interval
        self._now = wall_clock
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self._unsent_hits = 0    # counted here, not yet added to the team totals
        self._unsent_misses = 0
        self._flusher: asyncio.Task | None = None

    @classmethod
    def from_settings(cls, s: Settings, observer: BackendObserver | None = None) -> ResponseCache:
        """memory | none | redis[s]:// URL. Does not connect: an unreachable Redis is found by
        `start()` and only degrades the cache."""
        backend: CacheBackend
        if s.cache == "none":
            backend = DisabledBackend()
        elif s.cache == "memory":
            backend = MemoryBackend(s.cache_max_bytes)
        else:
            backend = RedisBackend(s.cache, KEY_PREFIX, s.redis_timeout, s.cache_compress_min_bytes)
            return cls(backend, ttl=s.cache_ttl, lease_ttl=s.cache_lease_ttl, near_ttl=s.cache_near_ttl,
                       near=MemoryBackend(s.cache_near_max_bytes) if s.cache_near_ttl > 0 else None,
                       observer=observer)
        return cls(backend, ttl=s.cache_ttl, lease_ttl=s.cache_lease_ttl, observer=observer)

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self._call(self.backend.start)
        except BackendUnavailable:
            log.warning("cache backend %s unreachable at start; serving without it until it answers",
                        self.backend.name)
        self._flusher = asyncio.create_task(self._flush_stats_forever(), name="cache-stats")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self._send_stats()
        await self.backend.close()

    # --- the guarded call ----------------------------------------------------------------------

    async def _call(self, op: Callable[..., Awaitable[T]], *args: object, bounded: bool = True) -> T:
        """Run one backend operation under the breaker, bounded by the backend's op timeout
        (admin operations such as flush pass bounded=False: each round trip is still bounded
        by the socket timeouts)."""
        if not self.breaker.allow():
            raise BackendUnavailable
        started, failure = time.perf_counter(), None
        try:
            timeout = self.backend.op_timeout if bounded else None
            if timeout is None:
                result = await op(*args)
            else:
                async with asyncio.timeout(timeout):
                    result = await op(*args)
        except BACKEND_ERRORS as e:
            failure = "timeout" if isinstance(e, TimeoutError) else "error"
            self.breaker.record_failure(describe_backend_error(e))
            raise BackendUnavailable from e
        finally:
            self.observer.backend_call(self.backend.name, op.__name__, time.perf_counter() - started, failure)
        self.breaker.record_success()
        return result

    # --- entries -------------------------------------------------------------------------------

    def _hit(self, entry: StoredEntry) -> CacheHit:
        return CacheHit(entry.completion, max(0.0, self._now() - entry.stored_at))

    async def lookup(self, key: str, max_age: float | None = None) -> tuple[CacheHit | None, CacheStatus]:
        """One backend read. An entry older than `max_age` (client's Cache-Control) is a MISS."""
        if not self.backend.enabled:
            return None, "BYPASS"
        entry = await self.near.get(key) if self.near is not None else None
        if entry is None:
            try:
                entry = await self._call(self.backend.get, key)
            except BackendUnavailable:
                self.errors += 1
                return None, "ERROR"
            if entry is not None and self.near is not None:
                await self.near.put(key, entry, self.near_ttl)
        if entry is not None:
            hit = self._hit(entry)
            if max_age is None or hit.age <= max_age:
                self.hits += 1
                self._unsent_hits += 1
                return hit, "HIT"
        self.misses += 1
        self._unsent_misses += 1
        return None, "MISS"

    async def store(self, key: str, completion: Completion, ttl: int | None = None, lease: str | None = None) -> bool:
        """Keep a complete success for `ttl` seconds (at most, and by default, Settings.cache_ttl); False when
        refused (not cacheable, cache disabled) or the backend failed. With `lease` (the token
        acquire_lease gave us) the lease is released in the same step when True comes back."""
        if not completion.cacheable or not self.backend.enabled:
            return False
        ttl = self.ttl if ttl is None else min(ttl, self.ttl)  # a client may shorten it, not extend it
        if ttl <= 0:
            return False
        entry = StoredEntry(completion, self._now())
        if self.near is not None:  # first: a repeat on this Mac hits even if the shared write fails
            await self.near.put(key, entry, min(ttl, self.near_ttl))
        try:
            await self._call(self.backend.put, key, entry, ttl, lease)
        except BackendUnavailable:
            return False
        return True

    async def delete(self, key: str) -> bool:
        if self.near is not None:
            await self.near.delete(key)
        try:
            return await self._call(self.backend.delete, key)
        except BackendUnavailable:
            return False

    async def flush(self) -> int:
        """Remove our cached entries (only ours: other users of a shared Redis keep theirs)."""
        if self.near is not None:
            await self.near.flush()
        try:
            return await self._call(self.backend.flush, bounded=False)
        except BackendUnavailable:
            return 0

    # --- cross-process single-flight -----------------------------------------------------------

    async def acquire_lease(self, key: str) -> str | None:
        """A token if we should generate `key`; None if another proxy leads (or the entry
        appeared meanwhile: `follow` then yields it at once). Backend down: we lead."""
        token = secrets.token_hex(8)
        try:
            return token if await self._call(self.backend.acquire_lease, key, token, self.lease_ttl) else None
        except BackendUnavailable:
            return token

    async def renew_lease(self, key: str, token: str) -> bool:
        """Extend our lease (or re-take it if a restarted Redis forgot it). False only when
        another proxy holds it now; a backend failure is not a loss (keep renewing)."""
        try:
            return await self._call(self.backend.renew_lease, key, token, self.lease_ttl)
        except BackendUnavailable:
            return True

    async def release_lease(self, key: str, token: str) -> None:
        """Give up the lease (after storing, or after failing: waiters then take over at once)."""
        try:
            await self._call(self.backend.release_lease, key, token)
        except BackendUnavailable:
            pass  # it expires by itself

    async def publish_events(self, key: str, payload: bytes) -> bool:
        """Relay a batch of our generation's events to followers in other proxies (a no-op for
        in-process backends). False when the backend failed: followers then get the entry."""
        if not self.backend.relays_events:
            return True
        try:
            await self._call(self.backend.append_events, key, payload, EVENTS_TTL)
        except BackendUnavailable:
            return False
        return True

    async def followed(self, key: str) -> bool:
        """Whether a follower in another proxy reads `key`'s relay (False when unknown)."""
        return await self._shared(False, self.backend.followed, key)

    async def recall_route(self, digest: str, ttl: int) -> str | None:
        """The pool upstream another proxy (or this one) sent conversation `digest` to, kept
        for `ttl` seconds more; None when unknown, not shared, or the backend failed."""
        return await self._shared(None, self.backend.get_route, digest, ttl)

    async def remember_route(self, digest: str, upstream: str, ttl: int) -> None:
        """(On failure each proxy still remembers its own routes.)"""
        await self._shared(None, self.backend.set_route, digest, upstream, ttl)

    async def _shared(self, fallback: T, op: Callable[..., Awaitable[T]], *args: object) -> T:
        """What a backend shared between proxies says; `fallback` when it is in-process (it
        knows nothing the proxy does not) or failed."""
        if not self.backend.relays_events:
            return fallback
        try:
            return await self._call(op, *args)
        except BackendUnavailable:
            return fallback

    def watch(self, key: str):
        """Wake-ups about `key`: its entry, lease or events changed, or a follower arrived."""
        return self.backend.watch(key)

    async def follow(self, key: str, timeout: float) -> AsyncIterator[list[bytes] | CacheHit | str | None]:
        """Another proxy's generation of `key` as it happens: batches of its relayed events
        (encoded), then exactly one outcome: the leader's entry (a CacheHit); "takeover" when
        the leader vanished (lease gone, no entry) or the backend failed; None when `timeout`
        passed. After "takeover" call acquire_lease again: one follower wins, the others
        follow again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        after = "0"
        async with self.backend.watch(key) as woken:
            while True:
                woken.clear()  # before the checks: a wake-up during them is not lost
                try:
                    batch, after = await self._call(self.backend.read_events, key, after)
                    # ...and keep the key marked followed: its leader relays only while it is
                    entry, leased = await self._call(self.backend.peek, key, self.lease_ttl)
                    if entry is not None:  # the leader relays everything before it stores
                        more, after = await self._call(self.backend.read_events, key, after)
                        batch += more
                except BackendUnavailable:
                    yield "takeover"
                    return
                if entry is None and not leased:
                    yield "takeover"  # the leader is gone: what it relayed is of no use
                    return
                if batch:
                    yield batch
                if entry is not None:
                    yield self._hit(entry)
                    return
                remaining = deadline - loop.time()
                if remaining <= 0:
                    yield None
                    return
                try:
                    async with asyncio.timeout(min(remaining, self.poll_interval)):
                        await woken.wait()
                except TimeoutError:
                    pass

    # --- visibility ----------------------------------------------------------------------------

    async def _send_stats(self) -> dict[str, int] | None:
        """Add unsent counts to the team totals; return the totals (None: not shared or down)."""
        hits, misses = self._unsent_hits, self._unsent_misses
        self._unsent_hits = self._unsent_misses = 0
        try:
            return await self._call(self.backend.add_stats, hits, misses)
        except BackendUnavailable:
            self._unsent_hits += hits  # sent with the next tick
            self._unsent_misses += misses
            return None

    async def _flush_stats_forever(self) -> None:
        while True:
            await asyncio.sleep(self.stats_flush_interval)
            if self._unsent_hits or self._unsent_misses or self.state == "degraded":
                await self._send_stats()

    @property
    def state(self) -> str:
        """ok | degraded (the last call failed or the breaker is open) | disabled."""
        if not self.backend.enabled:
            return "disabled"
        healthy = self.breaker.state is BreakerState.CLOSED and self.breaker.failures == 0
        return "ok" if healthy else "degraded"

    async def stats(self) -> dict:
        """The /health "cache" object: this proxy's counts, and the team's when shared."""
        try:
            items, nbytes = await self._call(self.backend.counts, bounded=False)
        except BackendUnavailable:
            items = nbytes = None
        team = await self._send_stats()
        out: dict = {"hits": self.hits, "misses": self.misses, "total_requests": self.hits + self.misses,
                     "hit_rate": hit_rate(self.hits, self.misses), "cached_items": items,
                     "backend": self.backend.name, "state": self.state, "errors": self.errors}
        if nbytes is not None:
            out["bytes"] = nbytes
        if team is not None:
            t_hits, t_misses = team.get("hits", 0), team.get("misses", 0)
            out["team"] = {"hits": t_hits, "misses": t_misses, "total_requests": t_hits + t_misses,
                           "hit_rate": hit_rate(t_hits, t_misses)}
        return out
