"""Benchmark: a cache hit through `ResponseCache.lookup`, memory and Redis (a real redis-server).

A hit through the proxy must beat the upstream answering directly; for reference nginx's
proxy_cache serves a hit in 0.29 ms and LiteLLM's cache in 18.8 ms (whole HTTP requests). This
measures the cache's share of that: one lookup, sequential (latency) and 64 at once
(throughput), against the least a Redis-backed cache can do — a bare redis-py GET of the
same bytes on the same client settings.

Completions: a short text answer (~0.2 KB), an Edit tool call (~2 KB) and a long answer
(~20 KB, compressed in Redis).

Run: /work/venv/bin/python bench/bench_cache_backends.py [--repeat N]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.rig, when run as a script

from proxy.cache.keys import KEY_PREFIX  # noqa: E402
from proxy.cache.store import ResponseCache  # noqa: E402
from proxy.completion import Completion, ToolCall, Usage  # noqa: E402
from proxy.config import Settings  # noqa: E402
from tests.rig.redis_server import RedisServer  # noqa: E402

CONCURRENCY = 64
CODE = "    def handle(self, request):\n        return self.router.dispatch(request)\n"
COMPLETIONS = {
    "text 0.2 KB": Completion(content="The tests pass now; the fix was in the key builder.", finish_reason="stop",
                              usage=Usage(20_000, 14)),
    "tool 2 KB": Completion(content=None, finish_reason="tool_calls", usage=Usage(30_000, 600), tool_calls=(
        ToolCall("call_0", "Edit", '{"file_path": "/src/app/router.py", "old_string": '
                 + repr(CODE * 12).replace("'", '"') + ', "new_string": "x"}'),)),
    "text 20 KB": Completion(content=CODE * 280, finish_reason="stop", usage=Usage(40_000, 5000)),
}


async def per_op_us(op: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    """Median and p99 of sequential calls, in microseconds."""
    for _ in range(min(repeat, 200)):
        await op()
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        await op()
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def throughput(op: Callable[[], Awaitable[object]], repeat: int) -> float:
    """Lookups per second with CONCURRENCY requests in flight."""
    rounds = max(1, repeat // CONCURRENCY)
    t = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(op() for _ in range(CONCURRENCY)))
    return rounds * CONCURRENCY / (time.perf_counter() - t)


async def bench_backend(name: str, settings: Settings, repeat: int) -> None:
    cache = ResponseCache.from_settings(settings)
    cache.stats_flush_interval = 3600.0
    await cache.start()
    try:
        for label, completion in COMPLETIONS.items():
            key = f"{KEY_PREFIX}bench:{label}"
            assert await cache.store(key, completion)
            hit, status = await cache.lookup(key)
            assert status == "HIT" and hit.completion == completion

            async def lookup(key=key):
                return await cache.lookup(key)

            med, p99 = await per_op_us(lookup, repeat)
            rate = await throughput(lookup, repeat)
            print(f"{name:7} {label:12} lookup hit  median {med:7.1f} µs  p99 {p99:7.1f} µs  "
                  f"{rate:9.0f} hits/s at {CONCURRENCY} concurrent")
            if name == "redis":
                client = cache.backend._client  # the same pool and parser: the floor for any lookup

                async def bare_get(key=key):
                    return await client.get(key)

                med, p99 = await per_op_us(bare_get, repeat)
                rate = await throughput(bare_get, repeat)
                print(f"{'':7} {'':12} bare GET    median {med:7.1f} µs  p99 {p99:7.1f} µs  "
                      f"{rate:9.0f} GETs/s at {CONCURRENCY} concurrent")
    finally:
        await cache.flush()
        await cache.close()


async def main(repeat: int) -> None:
    await bench_backend("memory", Settings(cache="memory"), repeat)
    server = RedisServer(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    server.start()
    try:
        await bench_backend("redis", Settings(cache=server.url, cache_near_ttl=0), repeat)
    finally:
        server.kill()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5000)
    asyncio.run(main(parser.parse_args().repeat))
