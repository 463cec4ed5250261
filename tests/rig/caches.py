"""`open_cache`: start a ResponseCache for a test and close it (and its connections) after."""
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
