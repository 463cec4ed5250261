"""Redis backend: one cache shared by every proxy that points at the same Redis (a team of Macs).

Every key we touch lives under one prefix (`mlxproxy:v1:`): entries are the keys the key
builder returns, plus, beside them,
    <key>:lease          who generates <key> now (SET NX PX token, renewed while generating)
    <prefix>index        sorted set key → expiry (ms): counts cached items without a SCAN
    <prefix>stats        hash of team-wide hits / misses (HINCRBY)
    <key>:events         stream of the events its leader relays while generating (XADD; TTL)
    <key>:followed       a follower in another proxy reads those events (PX, refreshed while it does)
    <prefix>notify       pub/sub channel; the message is a key whose entry, lease or events changed
Flush and counts never look outside the prefix, and never count leases or our own bookkeeping.

One `redis.asyncio` client with its connection pool (hiredis parser). A hit is one GET. Every
socket operation is bounded by the op timeout and nothing is retried: the facade fails open.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from proxy.cache.backends.base import BESIDE_SUFFIXES, EVENTS_SUFFIX, FOLLOWED_SUFFIX, LEASE_SUFFIX, Waiters
from proxy.cache.entry import EntryDecodeError, StoredEntry, decode_entry, encode_entry

log = logging.getLogger(__name__)

# SCAN page size for flush: large pages keep the round trips few, each stays well under 1 ms.
SCAN_COUNT = 1000
# The subscriber's reads carry their own timeout: without one redis-py applies the short
# socket timeout and a quiet channel would look like a dead Redis. A read that times out just
# reads again (notifications still arrive the moment they are published).
LISTEN_READ_TIMEOUT = 1.0

# Taking a lease drops what a dead leader relayed, in the same step: a new leader's followers
# read only its events.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('UNLINK', KEYS[3])
  return 1
end
return 0
"""
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
# An entry stored (with its expiry in the index, expired index entries pruned) and, when the
# storer passes its lease token, that lease released: one round trip at the end of a generation.
# KEYS: entry, index, lease; ARGV: entry bytes, ttl s, expires ms, now ms, token ('' none), channel
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[4])
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
redis.call('PUBLISH', ARGV[6], KEYS[1])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return 0
"""


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisBackend:
    name = "redis"
    enabled = True
    relays_events = True

    def __init__(self, url: str, prefix: str, op_timeout: float, compress_min_bytes: int) -> None:
        self.op_timeout = op_timeout
        self.prefix = prefix
        self.compress_min_bytes = compress_min_bytes
        # No retries (redis-py retries 10 times by default): the facade fails open instead.
        # Maintenance notifications (a Redis Enterprise feature, "auto" by default) make the
        # pool skip its check for connections the server closed, so after a Redis restart the
        # first command on each pooled connection would fail; off, they are reconnected.
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=op_timeout, socket_connect_timeout=op_timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0,
            maint_notifications_config=MaintNotificationsConfig(enabled=False))
        self._index = prefix + "index"
        self._stats = prefix + "stats"
        self._channel = prefix + "notify"
        self._routes = prefix + "route:"  # + a conversation's prefix digest -> its upstream
        self._own = {self._index, self._stats, self._channel}
        self._acquire = self._client.register_script(_ACQUIRE)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._put = self._client.register_script(_PUT)
        self._waiters = Waiters()
        self._listener: asyncio.Task | None = None
        self._listener_settled: asyncio.Event | None = None  # subscribed, or gave up trying

    async def start(self) -> None:
        await self._client.ping()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with suppress(asyncio.CancelledError):
                await self._listener
        await self._client.aclose()

    # --- entries -------------------------------------------------------------------------------

    async def get(self, key: str) -> StoredEntry | None:
        raw = await self._client.get(key)
        return None if raw is None else self._decode(key, raw)

    def _decode(self, key: str, raw: bytes) -> StoredEntry | None:
        try:
            return decode_entry(raw)
        except EntryDecodeError as e:  # not ours or damaged: a miss, not a backend failure
            log.warning("a cache entry was unreadable (%s); treated as a miss", e)
            return None

    async def put(self, key: str, entry: StoredEntry, ttl: int, lease: str | None = None) -> None:
        raw = encode_entry(entry.completion, entry.stored_at, self.compress_min_bytes)
        now_ms = int(time.time() * 1000)
        await self._put(keys=[key, self._index, key + LEASE_SUFFIX],
                        args=[raw, ttl, now_ms + ttl * 1000, now_ms, lease or "", self._channel])

    def _is_entry_key(self, key: str) -> bool:
        """Under our prefix and not our bookkeeping: the only keys delete and flush remove."""
        return (key.startswith(self.prefix) and key not in self._own
                and not key.endswith(BESIDE_SUFFIXES) and not key.startswith(self._routes))

    async def delete(self, key: str) -> bool:
        """Remove one entry; a key that is not one of our entries (DELETE /cache/{key} takes it
        from the URL) is refused, so another program's data in a shared Redis is safe."""
        if not self._is_entry_key(key):
            return False
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.unlink(key)
            pipe.zrem(self._index, key)
            removed, _ = await pipe.execute()
        return removed > 0

    async def flush(self) -> int:
        """SCAN + UNLINK our entries only (never FLUSHALL/FLUSHDB: the Redis may be shared).
        What generations running now keep beside their key (lease, relay, follower mark) stays:
        removing a relay under its followers would cut their answers, and all of it expires by
        itself. Team stats stay too. The count is of entries."""
        removed = 0
        match = _glob_escape(self.prefix) + "*"
        async for batch in self._scan_batches(match):
            doomed = [k for k in batch if self._is_entry_key(k.decode(errors="replace"))]
            if doomed:
                removed += await self._client.unlink(*doomed)
        await self._client.unlink(self._index)
        return removed

    async def _scan_batches(self, match: str) -> AsyncIterator[list[bytes]]:
        cursor = 0
        while True:
            cursor, keys = await self._client.scan(cursor, match=match, count=SCAN_COUNT)
            yield keys
            if cursor == 0:
                return

    async def counts(self) -> tuple[int, int | None]:
        """Entries not yet expired, by the index (put() prunes it). A read: a read-only replica
        or a full Redis, which refuse writes, still count (and still answer /health/ready)."""
        return await self._client.zcount(self._index, f"({int(time.time() * 1000)}", "+inf"), None

    # --- leases and wake-ups ------------------------------------------------------------------

    async def acquire_lease(self, key: str, token: str, ttl: float) -> bool:
        return bool(await self._acquire(keys=[key, key + LEASE_SUFFIX, key + EVENTS_SUFFIX],
                                        args=[token, int(ttl * 1000)]))

    async def renew_lease(self, key: str, token: str, ttl: float) -> bool:
        return bool(await self._renew(keys=[key + LEASE_SUFFIX], args=[token, int(ttl * 1000)]))

    async def release_lease(self, key: str, token: str) -> None:
        await self._release(keys=[key + LEASE_SUFFIX], args=[token, self._channel, key])

    async def peek(self, key: str, follower_ttl: float | None = None) -> tuple[StoredEntry | None, bool]:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.exists(key + LEASE_SUFFIX)
            if follower_ttl is not None:
                pipe.set(key + FOLLOWED_SUFFIX, b"1", px=int(follower_ttl * 1000), nx=True)
                pipe.pexpire(key + FOLLOWED_SUFFIX, int(follower_ttl * 1000))
            raw, leased, *marked = await pipe.execute()
        if marked and marked[0]:  # the first follower: wake the leader, which relays only now
            await self._client.publish(self._channel, key)
        return (None if raw is None else self._decode(key, raw)), bool(leased)

    async def followed(self, key: str) -> bool:
        return bool(await self._client.exists(key + FOLLOWED_SUFFIX))

    # --- pool routes ----------------------------------------------------------------------------

    async def get_route(self, digest: str, ttl: int) -> str | None:
        raw = await self._client.getex(self._routes + digest, ex=ttl)  # a route lives on while used
        return None if raw is None else raw.decode(errors="replace")

    async def set_route(self, digest: str, upstream: str, ttl: int) -> None:
        await self._client.set(self._routes + digest, upstream.encode(), ex=ttl)

    @asynccontextmanager
    async def watch(self, key: str) -> AsyncIterator[asyncio.Event]:
        """Register for wake-ups about `key`; makes sure our one subscriber runs (best effort:
        if it cannot subscribe now, the facade's polling still finds the result)."""
        with self._waiters.watch(key) as event:
            if self._listener is None or self._listener.done():
                self._listener_settled = asyncio.Event()
                self._listener = asyncio.create_task(self._listen(self._listener_settled),
                                                     name="cache-notify")
            with suppress(TimeoutError):
                async with asyncio.timeout(self.op_timeout):
                    await self._listener_settled.wait()
            yield event

    async def _listen(self, settled: asyncio.Event) -> None:
        """One subscription per process for all keys; ends on a connection error and is
        started again by the next watch."""
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            settled.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_READ_TIMEOUT)
                if message is not None:
                    self._waiters.notify(message["data"].decode())
        except (RedisError, OSError) as e:
            log.debug("cache notification subscriber stopped: %s", e)
        finally:
            settled.set()
            with suppress(RedisError, OSError):
                await pubsub.aclose()

    # --- live relay of a generation -----------------------------------------------------------

    async def append_events(self, key: str, payload: bytes, ttl: float) -> None:
        stream = key + EVENTS_SUFFIX
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, {"d": payload})
            pipe.pexpire(stream, int(ttl * 1000))
            pipe.publish(self._channel, key)
            await pipe.execute()

    async def read_events(self, key: str, after: str) -> tuple[list[bytes], str]:
        found = await self._client.xread({key + EVENTS_SUFFIX: after})
        if not found:
            return [], after
        records = found[0][1]
        return [fields[b"d"] for _, fields in records], records[-1][0].decode()

    # --- team counters --------------------------------------------------------------------------

    async def add_stats(self, hits: int, misses: int) -> dict[str, int] | None:
        async with self._client.pipeline(transaction=False) as pipe:
            if hits:
                pipe.hincrby(self._stats, "hits", hits)
            if misses:
                pipe.hincrby(self._stats, "misses", misses)
            pipe.hgetall(self._stats)
            totals = (await pipe.execute())[-1]
        return {k.decode(): int(v) for k, v in totals.items()}
