"""The Redis backend against a real redis-server: what lands in Redis, what flush may touch,
notifications and their polling fallback, team counters."""
import asyncio
import time

import pytest
import redis.asyncio as aioredis

from proxy.cache.backends.redis import RedisBackend
from proxy.cache.entry import decode_entry
from proxy.cache.keys import KEY_PREFIX
from proxy.cache.store import CacheHit, ResponseCache
from proxy.completion import Completion
from proxy.config import Settings
from tests.rig.caches import follow_outcome

KEY = KEY_PREFIX + "ab" * 32
SHORT = Completion(content="ok", finish_reason="stop")
LONG = Completion(content="def handler(request):\n    return respond(request)\n" * 100, finish_reason="stop")
NO_POLLING = 30.0


@pytest.fixture
async def raw(redis_shared):
    client = aioredis.Redis.from_url(redis_shared.url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_cache(redis_shared, open_cache):
    async def make(**options) -> ResponseCache:
        return await open_cache(ResponseCache(RedisBackend(redis_shared.url, KEY_PREFIX, 0.25, 1024),
                                              ttl=options.pop("ttl", 3600), **options))

    return make


async def test_every_write_has_the_ttl(make_cache, raw):
    cache = await make_cache()
    await cache.store(KEY, SHORT, ttl=120)
    assert 119_000 < await raw.pttl(KEY) <= 120_000
    await cache.store(KEY + "d", SHORT)
    assert 3_599_000 < await raw.pttl(KEY + "d") <= 3_600_000


async def test_an_entry_is_gone_after_its_ttl(make_cache):
    cache = await make_cache()
    await cache.store(KEY, SHORT, ttl=1)
    assert (await cache.lookup(KEY))[1] == "HIT"
    await asyncio.sleep(1.1)
    assert (await cache.lookup(KEY))[1] == "MISS"
    assert (await cache.stats())["cached_items"] == 0


async def test_values_above_the_threshold_are_compressed_in_redis(make_cache, raw):
    cache = await make_cache()
    await cache.store(KEY, LONG)
    await cache.store(KEY + "s", SHORT)
    long_raw, short_raw = await raw.get(KEY), await raw.get(KEY + "s")
    assert len(long_raw) < len(LONG.to_json()) / 5
    assert short_raw.endswith(SHORT.to_json())
    assert decode_entry(long_raw).completion == LONG
    assert (await cache.lookup(KEY))[0].completion == LONG


async def test_flush_deletes_only_our_entries(make_cache, raw):
    cache, other = await make_cache(), await make_cache()
    for i in range(2500):  # more than one SCAN page
        await raw.set(f"{KEY_PREFIX}bulk{i}", b"j" + b"\0" * 8 + SHORT.to_json())
    for i in range(3):
        await cache.store(f"{KEY}{i}", SHORT)
    foreign = {"sessions:42": b"user", "mlxproxy:v2:abc": b"next version", "mlxproxy:v1": b"no colon"}
    for k, v in foreign.items():
        await raw.set(k, v)
    token = await other.acquire_lease(KEY + "busy")
    await cache.lookup(KEY)
    team_before = (await cache.stats())["team"]

    assert await cache.flush() == 2503
    for k, v in foreign.items():
        assert await raw.get(k) == v
    assert await raw.get(KEY + "busy:lease") == token.encode()  # a live generation keeps its lease
    stats = await cache.stats()
    assert stats["team"] == team_before and stats["cached_items"] == 0
    assert sorted(await raw.keys(KEY_PREFIX + "*")) == [(KEY + "busy:lease").encode(), b"mlxproxy:v1:stats"]


async def test_leases_and_bookkeeping_are_not_cached_items(make_cache):
    cache = await make_cache()
    await cache.store(KEY, SHORT)
    await cache.acquire_lease(KEY + "x")
    await cache.lookup(KEY)
    stats = await cache.stats()
    assert stats["cached_items"] == 1


async def test_a_value_that_is_not_ours_is_a_miss_not_an_outage(make_cache, raw):
    cache = await make_cache()
    await raw.set(KEY, b"something another program wrote")
    assert await cache.lookup(KEY) == (None, "MISS")
    assert cache.state == "ok"


async def test_team_totals_add_up_every_proxys_counts(make_cache):
    a, b = await make_cache(), await make_cache()
    await a.store(KEY, SHORT)
    for _ in range(3):
        await a.lookup(KEY)
    await b.lookup(KEY)
    await b.lookup(KEY + "missing")
    stats_a = await a.stats()
    stats_b = await b.stats()
    assert (stats_a["hits"], stats_a["misses"]) == (3, 0)
    assert (stats_b["hits"], stats_b["misses"]) == (1, 1)
    assert stats_b["team"] == {"hits": 4, "misses": 1, "total_requests": 5, "hit_rate": "80.0%"}


async def test_counts_reach_the_team_totals_in_the_background(make_cache, raw):
    cache = await make_cache(stats_flush_interval=0.05)
    await cache.lookup(KEY)
    deadline = time.monotonic() + 2
    while await raw.hget(KEY_PREFIX + "stats", "misses") != b"1":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_a_hit_is_one_round_trip(make_cache, raw):
    cache = await make_cache(stats_flush_interval=3600)
    await cache.store(KEY, LONG)
    before = int((await raw.info("stats"))["total_commands_processed"])
    assert (await cache.lookup(KEY))[1] == "HIT"
    after = int((await raw.info("stats"))["total_commands_processed"])
    assert after - before == 2  # our GET + the INFO that measured it


async def test_polling_finds_an_entry_written_without_a_notification(make_cache, raw):
    follower = await make_cache(poll_interval=0.1)
    await raw.set(KEY + ":lease", b"another-proxy", px=10_000)
    waiting = asyncio.create_task(follow_outcome(follower, KEY, 10))
    await asyncio.sleep(0.05)
    await raw.set(KEY, b"j" + b"\0" * 8 + SHORT.to_json())  # a writer that never publishes
    outcome = await asyncio.wait_for(waiting, 2)
    assert isinstance(outcome, CacheHit) and outcome.completion == SHORT


async def test_polling_covers_a_dropped_subscription_and_the_next_wait_resubscribes(make_cache, raw):
    leader, follower = await make_cache(), await make_cache(poll_interval=0.2)
    token = await leader.acquire_lease(KEY)
    waiting = asyncio.create_task(follow_outcome(follower, KEY, 10))
    await asyncio.sleep(0.05)
    assert await raw.client_kill_filter(_type="pubsub") == 1  # the subscriber's connection drops
    await leader.store(KEY, SHORT)
    assert isinstance(await asyncio.wait_for(waiting, 2), CacheHit)

    slow = await make_cache(poll_interval=NO_POLLING)  # must be woken by a notification now
    await leader.release_lease(KEY, token)
    await leader.delete(KEY)
    token = await leader.acquire_lease(KEY)
    for waiter in (follower, slow):
        waiter.poll_interval = NO_POLLING
    waits = [asyncio.create_task(follow_outcome(w, KEY, 10)) for w in (follower, slow)]
    await asyncio.sleep(0.1)
    await leader.store(KEY, SHORT)
    done = await asyncio.wait_for(asyncio.gather(*waits), 2)
    assert all(isinstance(o, CacheHit) for o in done)


async def test_rediss_urls_speak_tls(redis_tls_server):
    cache = ResponseCache.from_settings(Settings(cache=redis_tls_server.url))
    await cache.start()
    try:
        assert redis_tls_server.url.startswith("rediss://")
        assert await cache.store(KEY, LONG)
        hit, status = await cache.lookup(KEY)
        assert status == "HIT" and hit.completion == LONG
        assert cache.state == "ok"
    finally:
        await cache.close()


@pytest.mark.parametrize("key", ["sessions:42", "mlxproxy:v2:abc", KEY_PREFIX + "stats", KEY + ":lease"])
async def test_delete_refuses_keys_that_are_not_our_entries(make_cache, raw, key):
    cache = await make_cache()
    await raw.set(key, b"precious")
    assert await cache.delete(key) is False
    assert await raw.get(key) == b"precious"


async def test_the_subscription_survives_a_quiet_channel_longer_than_the_op_timeout(make_cache):
    leader, follower = await make_cache(), await make_cache(poll_interval=NO_POLLING)
    await leader.acquire_lease(KEY)
    waiting = asyncio.create_task(follow_outcome(follower, KEY, 10))
    await asyncio.sleep(3 * follower.backend.op_timeout)  # several socket timeouts of silence
    await leader.store(KEY, SHORT)
    assert isinstance(await asyncio.wait_for(waiting, 1), CacheHit)


async def test_pool_routes_are_shared_renewed_when_read_and_never_flushed_or_deleted_as_entries(make_cache, raw):
    cache, other = await make_cache(), await make_cache()  # two proxies on one Redis
    await cache.store(KEY, SHORT)
    await cache.remember_route("conv1", "http://mac-2:8080", 100)
    assert await other.recall_route("conv1", 3600) == "http://mac-2:8080"
    route_key = KEY_PREFIX + "route:conv1"
    assert 3_599_000 < await raw.pttl(route_key) <= 3_600_000  # read: kept as long again
    assert await other.recall_route("conv2", 3600) is None
    assert await cache.flush() == 1  # the entry, not the route
    assert not await cache.delete(route_key)
    assert await other.recall_route("conv1", 3600) == "http://mac-2:8080"
