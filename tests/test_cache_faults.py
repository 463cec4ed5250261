"""Fail open against a real redis-server that dies, hangs and comes back: requests never wait
longer than redis_timeout (plus scheduling slack), the breaker opens, and the same cache object
works again once Redis returns."""
import asyncio
import time

import pytest

from proxy.cache.breaker import BreakerState, CircuitBreaker
from proxy.cache.keys import KEY_PREFIX
from proxy.cache.store import CacheHit, ResponseCache
from proxy.completion import Completion
from proxy.config import Settings
from tests.rig.caches import follow_outcome
from tests.rig.redis_server import free_port, running_server

KEY = KEY_PREFIX + "fa" * 32
ANSWER = Completion(content="fine", finish_reason="stop")
TIMEOUT = Settings().redis_timeout
# Scheduling slack on 2 busy cores; the point is "about redis_timeout", never seconds.
SLACK = 0.2


@pytest.fixture
async def make_cache(open_cache):
    async def make(url: str, **options) -> ResponseCache:
        # no in-process near copy: these tests are about what reaches Redis
        cache = ResponseCache.from_settings(Settings(cache=url, cache_near_ttl=0))
        for name, value in options.items():
            setattr(cache, name, value)
        return await open_cache(cache)

    return make


async def timed(awaitable):
    started = time.monotonic()
    result = await awaitable
    return result, time.monotonic() - started


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_killed_redis_fails_fast_and_opens_the_breaker(redis_server, make_cache):
    cache = await make_cache(redis_server.url)
    await cache.store(KEY, ANSWER)
    redis_server.kill()
    for _ in range(cache.breaker.failure_threshold):
        (hit, status), elapsed = await timed(cache.lookup(KEY))
        assert (hit, status) == (None, "ERROR") and elapsed < TIMEOUT + SLACK
    assert cache.breaker.state is BreakerState.OPEN
    (_, status), elapsed = await timed(cache.lookup(KEY))
    assert status == "ERROR" and elapsed < 0.01  # the open breaker does not even try
    assert (await cache.stats())["state"] == "degraded"
    assert (await cache.stats())["errors"] == cache.breaker.failure_threshold + 1


async def test_hung_redis_fails_within_the_timeout(redis_server, make_cache):
    cache = await make_cache(redis_server.url)
    await cache.store(KEY, ANSWER)
    redis_server.pause()  # SIGSTOP: connections are accepted, nothing answers
    try:
        for op in (cache.lookup(KEY), cache.store(KEY, ANSWER), cache.acquire_lease(KEY)):
            _, elapsed = await timed(op)
            assert elapsed < TIMEOUT + SLACK
        assert cache.breaker.state is BreakerState.OPEN
    finally:
        redis_server.resume()


async def test_every_operation_fails_open(redis_server, make_cache):
    cache = await make_cache(redis_server.url)
    redis_server.kill()
    assert await cache.store(KEY, ANSWER) is False
    token = await cache.acquire_lease(KEY)
    assert token  # nobody can coordinate: we generate
    assert await cache.renew_lease(KEY, token) is True  # not a loss: keep renewing
    await cache.release_lease(KEY, token)
    assert await follow_outcome(cache, KEY, 30) == "takeover"
    assert await cache.delete(KEY) is False
    assert await cache.flush() == 0
    stats = await cache.stats()
    assert stats["cached_items"] is None and stats["state"] == "degraded"


async def test_restarted_redis_is_used_again_without_restarting_the_proxy(redis_server, make_cache):
    cache = await make_cache(redis_server.url, breaker=CircuitBreaker("redis", reset_after=0.2),
                             stats_flush_interval=3600)
    await cache.store(KEY, ANSWER)
    redis_server.kill()
    for _ in range(3):
        await cache.lookup(KEY)
    assert cache.breaker.state is BreakerState.OPEN
    await redis_server.astart()  # empty: nothing was persisted
    await asyncio.sleep(0.2)
    assert await cache.lookup(KEY) == (None, "MISS")  # the probe: pooled connections reconnect
    assert cache.breaker.state is BreakerState.CLOSED
    assert await cache.store(KEY, ANSWER)
    assert (await cache.lookup(KEY))[1] == "HIT"
    token = await cache.acquire_lease(KEY + "n")  # the Lua scripts are loaded again
    assert token and await cache.renew_lease(KEY + "n", token)
    assert (await cache.stats())["state"] == "ok"


async def test_health_recovers_by_itself_without_traffic(redis_server, make_cache):
    cache = await make_cache(redis_server.url, breaker=CircuitBreaker("redis", reset_after=0.1),
                             stats_flush_interval=0.05)
    redis_server.kill()
    for _ in range(3):
        await cache.lookup(KEY)
    assert cache.state == "degraded"
    await redis_server.astart()
    await wait_until(lambda: cache.state == "ok")  # the stats tick probed and closed the breaker


async def test_counts_not_yet_sent_to_the_team_survive_an_outage(redis_server, make_cache):
    cache = await make_cache(redis_server.url, breaker=CircuitBreaker("redis", reset_after=0.1),
                             stats_flush_interval=3600)
    await cache.lookup(KEY)
    redis_server.kill()
    stats = await cache.stats()
    assert "team" not in stats and stats["misses"] == 1
    await redis_server.astart()
    deadline = time.monotonic() + 5
    while "team" not in (stats := await cache.stats()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert stats["team"]["misses"] == 1


async def test_proxy_starts_without_redis_and_picks_it_up_when_it_appears(make_cache, redis_server):
    redis_server.stop()
    port = free_port()
    redis_server.port = port
    cache = await make_cache(f"redis://127.0.0.1:{port}/0",
                             breaker=CircuitBreaker("redis", reset_after=0.1), stats_flush_interval=0.05)
    assert cache.state == "degraded"
    assert await cache.lookup(KEY) == (None, "ERROR")
    await redis_server.astart()
    await wait_until(lambda: cache.state == "ok")
    assert await cache.store(KEY, ANSWER)
    assert (await cache.lookup(KEY))[1] == "HIT"


async def test_a_leader_keeps_its_lease_across_a_redis_restart(redis_server, make_cache):
    leader = await make_cache(redis_server.url)
    follower = await make_cache(redis_server.url, poll_interval=0.05)
    token = await leader.acquire_lease(KEY)
    redis_server.kill()
    await redis_server.astart()  # the lease is gone with the data
    assert await leader.renew_lease(KEY, token) and leader.state == "ok"
    assert await follower.acquire_lease(KEY) is None  # the re-taken lease keeps followers waiting
    await leader.store(KEY, ANSWER)
    assert isinstance(await follow_outcome(follower, KEY, 5), CacheHit)


async def test_a_follower_takes_over_when_redis_dies_while_it_waits(redis_server, make_cache):
    leader = await make_cache(redis_server.url)
    follower = await make_cache(redis_server.url, poll_interval=0.1)
    assert await leader.acquire_lease(KEY)
    waiting = asyncio.create_task(follow_outcome(follower, KEY, 60))
    await asyncio.sleep(0.05)
    redis_server.kill()
    assert await asyncio.wait_for(waiting, 2) == "takeover"


async def test_with_a_persistent_redis_hits_resume_after_a_crash(make_cache):
    with running_server(persist=True) as server:
        cache = await make_cache(server.url)
        await cache.store(KEY, ANSWER)
        server.kill()
        assert (await cache.lookup(KEY))[1] == "ERROR"
        await server.astart()
        hit, status = await cache.lookup(KEY)
        assert status == "HIT" and hit.completion == ANSWER
