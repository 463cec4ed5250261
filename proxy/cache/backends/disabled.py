"""`--cache none`: stores nothing, so every request leads its own generation.

Same interface as the real backends, so the request path does not branch on the cache mode.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from proxy.cache.backends.base import NoEventRelay
from proxy.cache.entry import StoredEntry


class DisabledBackend(NoEventRelay):
    name = "none"
    enabled = False
    op_timeout = None

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get(self, key: str) -> StoredEntry | None:
        return None

    async def put(self, key: str, entry: StoredEntry, ttl: int, lease: str | None = None) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def flush(self) -> int:
        return 0

    async def counts(self) -> tuple[int, int | None]:
        return 0, 0

    async def acquire_lease(self, key: str, token: str, ttl: float) -> bool:
        return True  # nothing is shared: everyone leads

    async def renew_lease(self, key: str, token: str, ttl: float) -> bool:
        return True

    async def release_lease(self, key: str, token: str) -> None:
        return None

    async def peek(self, key: str, follower_ttl: float | None = None) -> tuple[StoredEntry | None, bool]:
        return None, False  # no entry will come and no leader exists: take over

    @asynccontextmanager
    async def watch(self, key: str) -> AsyncIterator[asyncio.Event]:
        yield asyncio.Event()

    async def add_stats(self, hits: int, misses: int) -> dict[str, int] | None:
        return None
