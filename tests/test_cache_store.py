"""The facade's contract, the same for the memory and Redis backends (a real redis-server),
plus `--cache none`. "Peers" are two ResponseCache objects over one shared store: two proxies
on one Redis, or two users of one in-process backend."""
import asyncio
import time

import pytest

from proxy.cache.backends.disabled import DisabledBackend
from proxy.cache.backends.memory import MemoryBackend
from proxy.cache.backends.redis import RedisBackend
from proxy.cache.keys import KEY_PREFIX
from proxy.cache.store import CacheHit, ResponseCache, hit_rate
from proxy.completion import Completion, ToolCall, Usage
from proxy.config import Settings
from tests.rig.caches import follow_outcome

KEY = KEY_PREFIX + "0" * 64
ANSWER = Completion(content="It is 42.", finish_reason="tool_calls", usage=Usage(900, 12),
                    tool_calls=(ToolCall("call_a", "Read", '{"file_path": "/tmp/x"}'),), model="m", created=7)
# Long enough that a test would time out if a follower relied on polling instead of a wake-up.
NO_POLLING = 30.0


class WallClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def make_cache(request, open_cache):
    """make_cache(**facade options) → a started ResponseCache; all share one store."""
    if request.param == "memory":
        shared = MemoryBackend(max_bytes=1 << 20)
        backend_for = lambda: shared  # noqa: E731  (peers in one process share the backend)
    else:
        url = request.getfixturevalue("redis_shared").url
        backend_for = lambda: RedisBackend(url, KEY_PREFIX, 0.25, 1024)  # noqa: E731

    async def make(**options) -> ResponseCache:
        return await open_cache(ResponseCache(backend_for(), ttl=options.pop("ttl", 3600), **options))

    return make


async def test_miss_then_hit_with_age(make_cache):
    clock = WallClock()
    cache = await make_cache(wall_clock=clock)
    assert await cache.lookup(KEY) == (None, "MISS")
    assert await cache.store(KEY, ANSWER)
    clock.now += 12.5
    hit, status = await cache.lookup(KEY)
    assert status == "HIT"
    assert hit == CacheHit(ANSWER, 12.5)


async def test_an_entry_older_than_max_age_is_a_miss(make_cache):
    clock = WallClock()
    cache = await make_cache(wall_clock=clock)
    await cache.store(KEY, ANSWER)
    clock.now += 60
    assert (await cache.lookup(KEY, max_age=60))[1] == "HIT"
    assert await cache.lookup(KEY, max_age=59) == (None, "MISS")


async def test_a_peer_with_a_clock_behind_sees_age_zero_not_negative(make_cache):
    ahead, behind = WallClock(), WallClock()
    behind.now -= 5
    await (await make_cache(wall_clock=ahead)).store(KEY, ANSWER)
    hit, _ = await (await make_cache(wall_clock=behind)).lookup(KEY)
    assert hit.age == 0.0


@pytest.mark.parametrize("refused", [
    Completion(content="half an answ", finish_reason="error"),
    Completion(content=None, finish_reason="stop"),
])
async def test_only_complete_successes_are_stored(make_cache, refused):
    cache = await make_cache()
    assert await cache.store(KEY, refused) is False
    assert await cache.lookup(KEY) == (None, "MISS")


async def test_delete_and_flush(make_cache):
    cache = await make_cache()
    for i in range(3):
        await cache.store(f"{KEY}{i}", ANSWER)
    assert await cache.delete(f"{KEY}0") is True
    assert await cache.delete(f"{KEY}0") is False
    assert (await cache.stats())["cached_items"] == 2
    assert await cache.flush() == 2
    assert (await cache.lookup(f"{KEY}1"))[1] == "MISS"
    assert (await cache.stats())["cached_items"] == 0


async def test_stats_count_this_proxys_lookups(make_cache):
    cache = await make_cache()
    await cache.lookup(KEY)
    await cache.store(KEY, ANSWER)
    for _ in range(4):
        await cache.lookup(KEY)
    stats = await cache.stats()
    assert {k: stats[k] for k in ("hits", "misses", "total_requests", "hit_rate", "cached_items", "state")} == {
        "hits": 4, "misses": 1, "total_requests": 5, "hit_rate": "80.0%", "cached_items": 1, "state": "ok"}
    assert stats["backend"] == cache.backend.name


def test_hit_rate_is_a_percentage_string():
    assert hit_rate(0, 0) == "0.0%"
    assert hit_rate(42, 8) == "84.0%"
    assert hit_rate(1, 2) == "33.3%"


# --- single flight --------------------------------------------------------------------------------

async def test_one_leader_per_key_and_release_lets_the_next_lead(make_cache):
    a, b = await make_cache(), await make_cache()
    token = await a.acquire_lease(KEY)
    assert token
    assert await b.acquire_lease(KEY) is None
    assert await a.renew_lease(KEY, token) is True
    assert await b.renew_lease(KEY, "not-the-owner") is False
    await b.release_lease(KEY, "not-the-owner")
    assert await b.acquire_lease(KEY) is None
    await a.release_lease(KEY, token)
    assert await b.acquire_lease(KEY)


async def test_no_lease_once_the_entry_exists_and_wait_returns_it_at_once(make_cache):
    a, b = await make_cache(), await make_cache(poll_interval=NO_POLLING)
    await a.store(KEY, ANSWER)
    assert await b.acquire_lease(KEY) is None
    outcome = await asyncio.wait_for(follow_outcome(b, KEY, 60), 2)
    assert isinstance(outcome, CacheHit) and outcome.completion == ANSWER


async def test_follower_wakes_when_the_leader_stores(make_cache):
    leader, follower = await make_cache(), await make_cache(poll_interval=NO_POLLING)
    token = await leader.acquire_lease(KEY)
    waiting = asyncio.create_task(follow_outcome(follower, KEY, 60))
    await asyncio.sleep(0.05)  # the follower is parked on its wake-up
    assert not waiting.done()
    started = time.monotonic()
    await leader.store(KEY, ANSWER)
    await leader.release_lease(KEY, token)
    outcome = await asyncio.wait_for(waiting, 2)
    assert isinstance(outcome, CacheHit) and outcome.completion == ANSWER
    assert time.monotonic() - started < 1.0


async def test_follower_takes_over_at_once_when_the_leader_gives_up(make_cache):
    leader, follower = await make_cache(), await make_cache(poll_interval=NO_POLLING)
    token = await leader.acquire_lease(KEY)
    waiting = asyncio.create_task(follow_outcome(follower, KEY, 60))
    await asyncio.sleep(0.05)
    await leader.release_lease(KEY, token)  # generation failed: nothing stored
    assert await asyncio.wait_for(waiting, 2) == "takeover"
    assert await follower.acquire_lease(KEY)


async def test_follower_takes_over_when_the_leader_dies(make_cache):
    leader = await make_cache(lease_ttl=0.3)
    follower = await make_cache(poll_interval=0.05)
    assert await leader.acquire_lease(KEY)  # ...and never renews: the leader crashed
    started = time.monotonic()
    assert await follow_outcome(follower, KEY, 10) == "takeover"
    assert 0.2 < time.monotonic() - started < 2.0


async def test_a_renewed_lease_outlives_its_ttl(make_cache):
    leader = await make_cache(lease_ttl=0.3)
    follower = await make_cache(poll_interval=0.05)
    token = await leader.acquire_lease(KEY)

    async def renew_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            assert await leader.renew_lease(KEY, token)
            await asyncio.sleep(0.1)

    renewing = asyncio.create_task(renew_for(0.9))
    assert await follow_outcome(follower, KEY, 0.8) is None  # still led after 0.8 s > 0.3 s TTL
    await renewing
    await leader.store(KEY, ANSWER)
    assert isinstance(await follow_outcome(follower, KEY, 1), CacheHit)


async def test_concurrent_acquires_elect_exactly_one_leader(make_cache):
    peers = [await make_cache() for _ in range(5)]
    tokens = await asyncio.gather(*(p.acquire_lease(KEY) for p in peers for _ in range(4)))
    assert sum(t is not None for t in tokens) == 1


# --- --cache none -----------------------------------------------------------------------------------

async def test_cache_none_bypasses_and_everyone_leads():
    cache = ResponseCache.from_settings(Settings(cache="none"))
    await cache.start()
    try:
        assert await cache.store(KEY, ANSWER) is False
        assert await cache.lookup(KEY) == (None, "BYPASS")
        assert await cache.acquire_lease(KEY) and await cache.acquire_lease(KEY)
        assert await follow_outcome(cache, KEY, 5) == "takeover"
        stats = await cache.stats()
        assert (stats["backend"], stats["state"], stats["total_requests"], stats["cached_items"]) == (
            "none", "disabled", 0, 0)
    finally:
        await cache.close()


def test_from_settings_picks_the_backend():
    assert isinstance(ResponseCache.from_settings(Settings()).backend, MemoryBackend)
    assert ResponseCache.from_settings(Settings(cache_max_bytes=12345)).backend.max_bytes == 12345
    assert isinstance(ResponseCache.from_settings(Settings(cache="none")).backend, DisabledBackend)
    redis_cache = ResponseCache.from_settings(Settings(cache="rediss://u:p@127.0.0.1:6380/2", cache_ttl=77))
    assert isinstance(redis_cache.backend, RedisBackend) and redis_cache.ttl == 77
