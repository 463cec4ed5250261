"""Soak: the proxy's memory under a long mixed load stays within its cache budget.

The proxy runs as its own process (`python -m proxy`, memory cache of --cache-max-bytes) so its
RSS can be read from /proc; a tiny upstream and the load run in this process. The load mixes
repeated prompts (hits), unique prompts (misses that fill and churn the LRU), streams and
non-streams, and streams the client abandons after the first event (disconnects). RSS is
sampled every few seconds.

Pass criteria (the exit code says which):
- budget: the highest RSS minus the RSS before any load stays within the cache budget
  times OVERHEAD_FACTOR plus FIXED_ALLOWANCE;
- no drift: the highest RSS of the last third exceeds that of the middle third by at most
  DRIFT_ALLOWANCE (a leak keeps climbing once the cache is full; a bounded cache levels off).

Run: /work/venv/bin/python bench/soak.py [--minutes 10] [--cache-max-bytes 8388608]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiohttp import web

from launcher.cli import free_port

MiB = 1024 * 1024
# Python objects around each cached byte (entry accounting is approximate; allocator slack).
OVERHEAD_FACTOR = 2.0
# Interpreter, aiohttp buffers, prometheus registry, connection state under this concurrency.
FIXED_ALLOWANCE = 48 * MiB
DRIFT_ALLOWANCE = 4 * MiB
SAMPLE_EVERY = 5.0
# The load: concurrent clients, and a pause between each client's requests (keeps the machine
# usable for others; ~150 requests/s in total).
CLIENTS = 8
PAUSE = 0.05
ANSWER = ("soak answer " * 400)[:4096]  # 4 KB: 8 MiB holds ~1,800 entries, churned within minutes
HOT_PROMPTS = 64
SLOW_MARKER = "[slow]"


# --- a tiny fast upstream ----------------------------------------------------------------------

def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


async def upstream_chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    slow = SLOW_MARKER in body["messages"][-1]["content"]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    usage = {"prompt_tokens": 20, "completion_tokens": 1000, "total_tokens": 1020}
    try:
        for i in range(0, len(ANSWER), 512):
            await resp.write(_chunk({"role": "assistant", "content": ANSWER[i:i + 512]}))
            if slow:
                await asyncio.sleep(0.05)
        await resp.write(_chunk({}, "stop"))
        await resp.write(b"data: " + orjson.dumps({"id": "c", "choices": [], "usage": usage}) + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
    except ConnectionResetError:
        pass  # the proxy cancelled an abandoned generation: expected
    return resp


async def upstream_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# --- the proxy process -----------------------------------------------------------------------------

def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def wait_ready(session: aiohttp.ClientSession, url: str, proc: subprocess.Popen) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"proxy exited with {proc.returncode}")
        try:
            async with session.get(url + "/health/live") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("proxy did not start")


# --- the load ----------------------------------------------------------------------------------------

@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=dict)
    failures: int = 0

    def add(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1


async def one_request(session: aiohttp.ClientSession, url: str, rng: random.Random, serial: int, tally: Tally) -> None:
    roll = rng.random()
    if roll < 0.45:
        kind, prompt = "hit", f"hot prompt {rng.randrange(HOT_PROMPTS)}"
    elif roll < 0.90:
        kind, prompt = "miss", f"unique prompt {serial} {rng.random()}"
    else:
        kind, prompt = "disconnect", f"{SLOW_MARKER} abandoned {serial}"
    stream = kind == "disconnect" or rng.random() < 0.5
    body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    async with session.post(url + "/v1/chat/completions", json=body) as r:
        if r.status != 200:
            tally.failures += 1
            return
        if kind == "disconnect":
            await r.content.readany()  # first bytes, then leave
            r.close()
        else:
            await r.read()
    tally.add(f"{kind}/{'stream' if stream else 'json'}")


async def client(session, url: str, seed: int, deadline: float, serial: itertools.count, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        try:
            await one_request(session, url, rng, next(serial), tally)
        except (aiohttp.ClientError, asyncio.TimeoutError):
            tally.failures += 1
        await asyncio.sleep(PAUSE)


async def sampler(pid: int, deadline: float, series: list[tuple[float, int]], start: float) -> None:
    while time.monotonic() < deadline:
        await asyncio.sleep(SAMPLE_EVERY)
        series.append((time.monotonic() - start, rss_bytes(pid)))


# --- verdict -----------------------------------------------------------------------------------------

def verdict(baseline: int, series: list[tuple[float, int]], budget: int) -> tuple[bool, list[str]]:
    values = [v for _, v in series]
    third = max(1, len(values) // 3)
    middle, last = values[third:2 * third] or values, values[2 * third:] or values
    peak_growth = max(values) - baseline
    drift = max(last) - max(middle)
    limit = int(budget * OVERHEAD_FACTOR + FIXED_ALLOWANCE)
    lines = [f"RSS before load      {baseline / MiB:8.1f} MiB",
             f"RSS min/median/max   {min(values) / MiB:8.1f} / {statistics.median(values) / MiB:.1f} / "
             f"{max(values) / MiB:.1f} MiB ({len(values)} samples every {SAMPLE_EVERY:g}s)",
             f"peak growth          {peak_growth / MiB:8.1f} MiB (limit {limit / MiB:.1f} = cache "
             f"{budget / MiB:g} MiB x {OVERHEAD_FACTOR:g} + {FIXED_ALLOWANCE / MiB:g})",
             f"drift (last third)   {drift / MiB:8.1f} MiB (limit {DRIFT_ALLOWANCE / MiB:g})"]
    return peak_growth <= limit and drift <= DRIFT_ALLOWANCE, lines


async def soak(minutes: float, cache_max_bytes: int) -> int:
    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", upstream_chat)
    upstream_app.router.add_get("/health", upstream_health)
    runner = web.AppRunner(upstream_app, access_log=None)
    await runner.setup()
    up_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", up_port).start()

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "--upstream", f"http://127.0.0.1:{up_port}",
                             "--port", str(port), "--cache", "memory", "--cache-max-bytes", str(cache_max_bytes)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    tally, series = Tally(), []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            await wait_ready(session, url, proc)
            baseline = rss_bytes(proc.pid)
            start = time.monotonic()
            deadline = start + minutes * 60
            serial = itertools.count()
            await asyncio.gather(sampler(proc.pid, deadline, series, start),
                                 *(client(session, url, seed, deadline, serial, tally) for seed in range(CLIENTS)))
            async with session.get(url + "/health") as r:
                cache = (await r.json())["cache"]
    finally:
        proc.terminate()
        proc.wait(30)
        await runner.cleanup()
    total = sum(tally.counts.values())
    print(f"soak: {minutes:g} min, {total} requests ({total / (minutes * 60):.0f}/s), "
          f"{tally.failures} failed; cache {cache['cached_items']} items, {cache.get('bytes', 0) / MiB:.1f} MiB, "
          f"hit rate {cache['hit_rate']}")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(tally.counts.items())))
    print("  RSS series (MiB): " + " ".join(f"{v / MiB:.0f}" for _, v in series))
    ok, lines = verdict(baseline, series, cache_max_bytes)
    for line in lines:
        print("  " + line)
    print("PASS" if ok and not tally.failures else "FAIL")
    return 0 if ok and not tally.failures else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cache-max-bytes", type=int, default=8 * MiB)
    args = parser.parse_args()
    return asyncio.run(soak(args.minutes, args.cache_max_bytes))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
