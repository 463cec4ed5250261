"""`open_cache`: start a ResponseCache for a test and close it (and its connections) after;
`follow_outcome`: how following another proxy's generation ended, without its relayed events."""
from __future__ import annotations

import pytest

from proxy.cache.store import ResponseCache


@pytest.fixture
async def open_cache():
    opened: list[ResponseCache] = []

    async def open_(cache: ResponseCache) -> ResponseCache:
        await cache.start()
        opened.append(cache)
        return cache

    yield open_
    for cache in opened:
        await cache.close()


async def follow_outcome(cache: ResponseCache, key: str, timeout: float):
    """The one outcome `ResponseCache.follow` ends with (a CacheHit, "takeover" or None)."""
    async for item in cache.follow(key, timeout):
        if not isinstance(item, list):
            return item
    return None
