"""Proxy overhead and cache-hit speed, each against a baseline measured in the same run.

    python bench/bench_proxy.py [--requests 500] [--seconds 3] [--rounds 3] [--concurrency 32]
                                [--compare OTHER_CHECKOUT]

Processes: a minimal instant upstream (bench/fast_upstream.py), a real redis-server (if
installed), and `python -m proxy` in front, each its own process, clients over loopback.
Body: a Claude-Code-sized request (~100 KB: the captured anyclaude body plus history).
Rows:
  direct upstream            the baseline: the instant upstream hit directly
  proxy, cache none          added latency of a proxied request (miss path), JSON and stream
  proxy hit, memory / redis  cache hits: p50/p99 at concurrency 1, throughput at concurrency 32
                             (redis: served from the in-process near copy, as a retry on the
                             same Mac is; "no near copy": every hit is a Redis round trip, as
                             another Mac's first hit is)
Misses (a second table): every request a new 100 KB body, to an upstream that waits 50 ms and
then streams 200 one-token events (bench/fast_upstream.py --delay-ms 50 --tokens 200). The
baseline is that same upstream streaming to a direct client, so the difference is the proxy's
own cost: added p50 at concurrency 1 (JSON and stream), added time to the first content byte of
a stream, and misses/s at concurrency 8 against direct streams/s. The row "aiohttp pass-through
(floor)" (bench/floor_proxy.py) forwards bytes and nothing else: what any aiohttp proxy adds,
so a proxy row minus it is the proxy's own cost.
Latency: each scenario's requests alternate with the baseline's, and its ratio is against those
baseline samples; throughput: rounds alternate between scenarios, median kept. Either way the
machine's noise falls on baseline and proxy alike.
`--compare DIR` adds every proxy row again for the proxy of another checkout (another commit,
`git worktree add DIR REV`), in the same run: a change is not slower when its rows keep their
ratios against the other checkout's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "anyclaude-chat-completions-turn1.json"
TARGET_BODY_BYTES = 100_000
WARMUP = 20  # requests per scenario before measuring (connections, caches filled)
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def claude_code_body() -> dict:
    """The captured anyclaude request grown with tool-use history to ~100 KB."""
    body = json.loads(FIXTURE.read_text())["body"]
    body.update(stream=False)
    body.pop("stream_options", None)
    turn = 0
    while len(orjson.dumps(body)) < TARGET_BODY_BYTES:
        turn += 1
        call = {"id": f"call_{turn}", "type": "function",
                "function": {"name": "Read", "arguments": json.dumps({"file_path": f"src/module_{turn}.py"})}}
        body["messages"] += [{"role": "assistant", "content": "", "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": f"call_{turn}",
                              "content": f"def function_{turn}(x):\n    return x * {turn}\n" * 20},
                             {"role": "user", "content": f"Now look at module {turn + 1}."}]
    return body


@contextmanager
def process(argv: list[str], ready_url: str | None = None, env: dict | None = None, cwd: Path | None = None):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    try:
        if ready_url:
            deadline = time.monotonic() + 30
            while True:
                try:
                    import urllib.request
                    urllib.request.urlopen(ready_url, timeout=1).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"{argv[:3]} did not start")
                    time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextmanager
def redis_server():
    exe = shutil.which("redis-server")
    if exe is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start")
                time.sleep(0.05)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.kill()
            proc.wait()


def proxy_argv(upstream: str, port: int, cache: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "proxy", "--upstream", upstream, "--port", str(port), "--cache", cache, *flags]


@dataclass
class Scenario:
    name: str
    url: str
    payload: bytes
    throughput: bool = True
    latencies: list[float] = field(default_factory=list)
    paired_base: list[float] = field(default_factory=list)  # the baseline, measured alongside
    rates: list[float] = field(default_factory=list)


async def paired_latencies(base: Scenario, sc: Scenario, n: int) -> None:
    """Requests to the scenario and to the baseline alternately (A B B A ...): both see the same
    machine at the same moments, and each server runs warm, as under a stream of retries."""
    async with aiohttp.ClientSession() as s:
        for i in range(n + WARMUP):
            for target in ((base, sc) if i % 2 else (sc, base)):
                t = time.perf_counter()
                async with s.post(target.url, data=target.payload, headers=JSON) as r:
                    await r.read()
                    assert r.status == 200, (target.name, r.status)
                if i >= WARMUP:
                    (sc.paired_base if target is base else sc.latencies).append(time.perf_counter() - t)
                    if target is base:
                        base.latencies.append(time.perf_counter() - t)


async def throughput(url: str, payload: bytes, seconds: float, concurrency: int) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def worker():
            nonlocal done
            while time.perf_counter() < stop_at:
                async with s.post(url, data=payload, headers=JSON) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t)


# The miss upstream: a model's prefill, then an answer of this many one-token events.
MISS_DELAY_MS, MISS_TOKENS = 50, 200
MISS_CONCURRENCY = 8
FLOOR = "aiohttp pass-through (floor)"  # bench/floor_proxy.py: bytes in, bytes on, nothing else
NONCE = b"NONCE-0000000000"  # replaced per request: every miss a body never seen before


class UniqueBodies:
    """Bodies that differ only in a nonce in the last message: each new to every cache (a JSON
    and a stream request of the same conversation share one entry, so they never share a nonce)."""

    def __init__(self, body: dict) -> None:
        last = {"role": "user", "content": "Go on. " + NONCE.decode()}
        self._templates = {stream: orjson.dumps({**body, "stream": stream, "messages": [*body["messages"][:-1], last]})
                           for stream in (False, True)}
        self._count = 0

    def next(self, stream: bool) -> bytes:
        self._count += 1
        return self._templates[stream].replace(NONCE, b"NONCE-%010d" % self._count)


@dataclass
class MissScenario:
    name: str
    url: str
    totals: dict[bool, list[float]] = field(default_factory=lambda: {False: [], True: []})  # stream? -> s
    firsts: list[float] = field(default_factory=list)  # first content byte of a stream
    rates: list[float] = field(default_factory=list)


async def timed_miss(s: aiohttp.ClientSession, url: str, payload: bytes) -> tuple[float, float | None]:
    """(seconds to the whole answer, seconds to its first content byte when streamed)."""
    t = time.perf_counter()
    first = None
    async with s.post(url, data=payload, headers=JSON) as r:
        assert r.status == 200, (url, r.status)
        async for piece in r.content.iter_any():
            if first is None and b'"content":"w' in piece:
                first = time.perf_counter() - t
    return time.perf_counter() - t, first


async def paired_misses(base: MissScenario, sc: MissScenario, bodies: UniqueBodies, n: int) -> None:
    """Alternating with the baseline (A B B A ...), each request a new body."""
    async with aiohttp.ClientSession() as s:
        for i in range(n + WARMUP):
            for stream in (False, True):
                for target in ((base, sc) if i % 2 else (sc, base)):
                    # the baseline always streams: the proxy asks the upstream for a stream either way
                    total, first = await timed_miss(s, target.url, bodies.next(stream or target is base))
                    if i >= WARMUP:
                        target.totals[stream or target is base].append(total)
                        if stream and first is not None:
                            target.firsts.append(first)


async def miss_throughput(url: str, bodies: UniqueBodies, seconds: float, concurrency: int) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker():
            nonlocal done
            while time.perf_counter() < stop_at:
                await timed_miss(s, url, bodies.next(True))
                done += 1
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500, help="latency samples per scenario")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one throughput round")
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per scenario (median kept)")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--compare", type=Path, help="another checkout whose proxy runs beside this one")
    ap.add_argument("--misses", type=int, default=200, help="miss samples per scenario, each protocol (0: none)")
    ap.add_argument("--only-misses", action="store_true", help="just the miss table")
    args = ap.parse_args()
    body = claude_code_body()
    checkouts = [(ROOT, "")] + ([(args.compare.resolve(), f" [{args.compare.name}]")] if args.compare else [])
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        if not args.only_misses:
            hit_table(args, stack, checkouts, redis_url, body)
        if args.misses:
            miss_table(args, stack, checkouts, redis_url, body)


def start_proxy(stack: ExitStack, upstream: str, cache: str, flags: tuple, checkout: Path) -> str:
    port = free_port()
    stack.enter_context(process(proxy_argv(upstream, port, cache, *flags), f"http://127.0.0.1:{port}/health",
                                dict(os.environ, PYTHONPATH=str(checkout)), cwd=checkout))
    return f"http://127.0.0.1:{port}/v1/chat/completions"


def hit_table(args, stack: ExitStack, checkouts: list[tuple[Path, str]], redis_url: str | None, body: dict) -> None:
    json_payload, stream_payload = orjson.dumps(body), orjson.dumps({**body, "stream": True})
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    chat = "/v1/chat/completions"
    stack.enter_context(process([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(up_port)],
                                f"{upstream}/ready"))
    scenarios = [Scenario("direct upstream (baseline), JSON", upstream + chat, json_payload),
                 Scenario("direct upstream (baseline), stream", upstream + chat, stream_payload, False)]
    caches = [("proxy, cache none (miss path)", "none", ()), ("proxy hit, memory", "memory", ())]
    if redis_url:  # a repeat on the same Mac (near copy), and every hit a Redis round trip
        caches += [("proxy hit, redis", redis_url, ()),
                   ("proxy hit, redis, no near copy", redis_url, ("--cache-near-ttl", "0"))]
    for label, cache, flags in caches:
        for checkout, tag in checkouts:
            url = start_proxy(stack, upstream, cache, flags, checkout)
            scenarios += [Scenario(f"{label}{tag}, JSON", url, json_payload),
                          Scenario(f"{label}{tag}, stream", url, stream_payload, False)]
    json_base, stream_base = scenarios[0], scenarios[1]
    for sc in scenarios[2:]:
        base = json_base if sc.payload is json_payload else stream_base
        asyncio.run(paired_latencies(base, sc, args.requests))
    for _ in range(args.rounds):  # alternate rounds, so slow phases of the machine are shared
        for sc in scenarios:
            if sc.throughput:
                sc.rates.append(asyncio.run(throughput(sc.url, sc.payload, args.seconds, args.concurrency)))
    base = scenarios[0]
    base_p50, base_rps = statistics.median(base.latencies) * 1000, statistics.median(base.rates)
    print(f"body {len(json_payload) // 1000} KB; latency: {args.requests} requests at concurrency 1, each "
          f"scenario alternating with the baseline; throughput: median of {args.rounds} alternating "
          f"{args.seconds:.0f} s rounds at concurrency {args.concurrency}")
    print(f"{'scenario':58s} {'p50 ms':>8s} {'p99 ms':>8s} {'vs base':>8s} {'req/s':>8s} {'vs base':>8s}")
    for sc in scenarios:
        p50 = statistics.median(sc.latencies) * 1000
        # against the baseline samples taken alongside it (the baseline rows: all of them)
        paired = statistics.median(sc.paired_base) * 1000 if sc.paired_base else base_p50
        rps = statistics.median(sc.rates) if sc.rates else None
        rps_s = f"{rps:8.0f} {rps / base_rps:7.2f}x" if rps else f"{'':8s} {'':8s}"
        print(f"{sc.name:58s} {p50:8.2f} {pct(sc.latencies, 99):8.2f} {p50 / paired:7.2f}x {rps_s}")


def miss_table(args, stack: ExitStack, checkouts: list[tuple[Path, str]], redis_url: str | None, body: dict) -> None:
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    stack.enter_context(process([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(up_port),
                                 "--delay-ms", str(MISS_DELAY_MS), "--tokens", str(MISS_TOKENS)], f"{upstream}/ready"))
    bodies = UniqueBodies(body)
    direct = MissScenario("direct upstream, streaming (baseline)", upstream + "/v1/chat/completions")
    caches = [("proxy miss, memory", "memory")] + ([("proxy miss, redis", redis_url)] if redis_url else [])
    # As many generations at once as the clients send (an unknown upstream would get 1).
    flags = ("--max-concurrency", str(MISS_CONCURRENCY))
    floor_port = free_port()
    stack.enter_context(process([sys.executable, str(ROOT / "bench" / "floor_proxy.py"), str(floor_port), upstream],
                                f"http://127.0.0.1:{floor_port}/ready"))
    scenarios = [MissScenario(FLOOR, f"http://127.0.0.1:{floor_port}/v1/chat/completions")]
    scenarios += [MissScenario(f"{label}{tag}", start_proxy(stack, upstream, cache, flags, checkout))
                  for label, cache in caches for checkout, tag in checkouts]
    pairs: dict[str, MissScenario] = {}
    for sc in scenarios:
        pairs[sc.name] = base = MissScenario(direct.name, direct.url)
        asyncio.run(paired_misses(base, sc, bodies, args.misses))
    for _ in range(args.rounds):
        for sc in [direct, *scenarios]:
            sc.rates.append(asyncio.run(miss_throughput(sc.url, bodies, args.seconds, MISS_CONCURRENCY)))
    direct_rate = statistics.median(direct.rates)
    print(f"\nmisses: unique {len(bodies.next(False)) // 1000} KB bodies, upstream {MISS_DELAY_MS} ms then "
          f"{MISS_TOKENS} one-token events; {args.misses} of each at concurrency 1 alternating with a direct "
          f"client; misses/s: median of {args.rounds} {args.seconds:.0f} s rounds at concurrency {MISS_CONCURRENCY}")
    print(f"{'scenario':40s} {'JSON p50':>9s} {'+ms':>6s} {'stream p50':>11s} {'+ms':>6s} {'p99':>7s} "
          f"{'1st byte':>9s} {'+ms':>6s} {'misses/s':>9s} {'vs direct':>9s}")
    print(f"{direct.name:40s} {'':>9s} {'':>6s} {'':>11s} {'':>6s} {'':>7s} {'':>9s} {'':>6s} {direct_rate:9.1f} {1:8.2f}x")
    added = {}  # scenario -> (JSON +ms, stream +ms, first byte +ms)
    for sc in scenarios:
        base = pairs[sc.name]
        bst = statistics.median(base.totals[True]) * 1000  # the direct stream, the baseline of both
        j, st = statistics.median(sc.totals[False]) * 1000, statistics.median(sc.totals[True]) * 1000
        f, bf = (statistics.median(x.firsts) * 1000 for x in (sc, base))
        rate = statistics.median(sc.rates)
        added[sc.name] = (j - bst, st - bst, f - bf)
        print(f"{sc.name:40s} {j:9.2f} {j - bst:+6.2f} {st:11.2f} {st - bst:+6.2f} {pct(sc.totals[True], 99):7.2f} "
              f"{f:9.2f} {f - bf:+6.2f} {rate:9.1f} {rate / direct_rate:8.2f}x")
    print("\nthe proxy's own cost: added ms above the floor row's (JSON, stream, first byte)")
    for name, cost in added.items():
        if name != FLOOR:
            print(f"{name:40s} " + " ".join(f"{c - fl:+6.2f}" for c, fl in zip(cost, added[FLOOR])))


if __name__ == "__main__":
    main()
