"""In-process backend: LRU bounded by bytes (key + value + overhead), TTL, local leases."""
import pytest

from proxy.cache.backends.memory import ENTRY_OVERHEAD_BYTES, MemoryBackend, entry_size
from proxy.cache.entry import StoredEntry
from proxy.completion import Completion


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def entry(text: str = "x" * 100) -> StoredEntry:
    return StoredEntry(Completion(content=text, finish_reason="stop"), stored_at=1.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_entry_size_counts_key_json_and_overhead():
    e = entry("é" * 10)
    assert entry_size("ké", e) == 3 + len(e.completion.to_json()) + ENTRY_OVERHEAD_BYTES


async def test_byte_bound_evicts_least_recently_used_first(clock):
    one = entry_size("k0", entry())
    mem = MemoryBackend(max_bytes=3 * one, clock=clock)
    for i in range(3):
        await mem.put(f"k{i}", entry(), ttl=60)
    assert await mem.get("k0") is not None  # k0 is now the most recently used
    await mem.put("k3", entry(), ttl=60)
    assert await mem.get("k1") is None
    assert [await mem.get(k) is not None for k in ("k0", "k2", "k3")] == [True, True, True]
    assert await mem.counts() == (3, 3 * one)


async def test_a_large_entry_evicts_as_many_as_needed(clock):
    small = entry_size("k0", entry())
    mem = MemoryBackend(max_bytes=4 * small, clock=clock)
    for i in range(4):
        await mem.put(f"k{i}", entry(), ttl=60)
    big = entry("y" * (2 * small))
    await mem.put("big", big, ttl=60)
    items, nbytes = await mem.counts()
    assert nbytes <= mem.max_bytes
    assert await mem.get("big") == big
    assert items == 1 + sum([await mem.get(f"k{i}") is not None for i in range(4)])


async def test_an_entry_larger_than_the_whole_cache_is_not_kept_and_evicts_nothing(clock):
    mem = MemoryBackend(max_bytes=2000, clock=clock)
    await mem.put("small", entry(), ttl=60)
    await mem.put("huge", entry("z" * 5000), ttl=60)
    assert await mem.get("huge") is None
    assert await mem.get("small") is not None


async def test_replacing_a_key_does_not_count_it_twice(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    await mem.put("k", entry("a" * 10), ttl=60)
    await mem.put("k", entry("b" * 500), ttl=60)
    assert await mem.counts() == (1, entry_size("k", entry("b" * 500)))


async def test_entries_expire_after_their_ttl(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    await mem.put("short", entry(), ttl=10)
    await mem.put("long", entry(), ttl=100)
    clock.now += 9.9
    assert await mem.get("short") is not None
    clock.now += 0.1
    assert await mem.get("short") is None
    assert await mem.get("long") is not None
    assert (await mem.counts())[0] == 1


async def test_expired_entries_leave_the_counts_and_free_their_bytes(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    for i in range(5):
        await mem.put(f"k{i}", entry(), ttl=10 + i)
    clock.now += 12
    items, nbytes = await mem.counts()
    assert items == 2 and nbytes == 2 * entry_size("k0", entry())


async def test_delete_and_flush(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    await mem.put("a", entry(), ttl=10)
    await mem.put("b", entry(), ttl=10)
    assert await mem.delete("a") is True
    assert await mem.delete("a") is False
    assert await mem.flush() == 1
    assert await mem.counts() == (0, 0)


async def test_leases_are_exclusive_renewable_and_expire(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    assert await mem.acquire_lease("k", "t1", ttl=15)
    assert not await mem.acquire_lease("k", "t2", ttl=15)
    clock.now += 10
    assert await mem.renew_lease("k", "t1", ttl=15)
    assert not await mem.renew_lease("k", "t2", ttl=15)
    clock.now += 14
    assert await mem.peek("k") == (None, True)
    clock.now += 1
    assert await mem.peek("k") == (None, False)  # the leader stopped renewing: it died
    assert await mem.acquire_lease("k", "t2", ttl=15)


async def test_no_lease_is_granted_for_a_key_that_has_an_entry(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    await mem.put("k", entry(), ttl=60)
    assert not await mem.acquire_lease("k", "t", ttl=15)


async def test_release_needs_the_owner_token_and_wakes_watchers(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    assert await mem.acquire_lease("k", "owner", ttl=15)
    async with mem.watch("k") as woken:
        await mem.release_lease("k", "someone-else")
        assert not woken.is_set() and (await mem.peek("k"))[1]
        await mem.release_lease("k", "owner")
        assert woken.is_set()
    assert await mem.peek("k") == (None, False)


async def test_put_wakes_watchers_of_that_key_only(clock):
    mem = MemoryBackend(max_bytes=1 << 20, clock=clock)
    async with mem.watch("a") as woken_a, mem.watch("b") as woken_b:
        await mem.put("a", entry(), ttl=60)
        assert woken_a.is_set() and not woken_b.is_set()
