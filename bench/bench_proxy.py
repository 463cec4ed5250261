"""Proxy overhead and cache-hit speed, each against a baseline measured in the same run.

    python bench/bench_proxy.py [--requests 400] [--seconds 5] [--concurrency 32]

Processes: a minimal instant upstream (bench/fast_upstream.py), a real redis-server (if
installed), and `python -m proxy` in front, each its own process, clients over loopback.
Body: a Claude-Code-sized request (~100 KB: the captured anyclaude body plus history).
Rows:
  direct upstream            the baseline: the instant upstream hit directly
  proxy, cache none          added latency of a proxied request (miss path), JSON and stream
  proxy hit, memory / redis  cache hits: p50/p99 at concurrency 1, throughput at concurrency 32
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
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT.parent / "shared" / "fixtures" / "anyclaude-chat-completions-turn1.json"
TARGET_BODY_BYTES = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def claude_code_body() -> dict:
    """The captured anyclaude request grown with tool-use history to ~100 KB."""
    body = json.loads(FIXTURE.read_text())["body"] if FIXTURE.exists() else {
        "messages": [{"role": "system", "content": "You are a coding agent. " * 400}], "tools": []}
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
def process(argv: list[str], ready_url: str | None = None, env: dict | None = None):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
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


def proxy_argv(upstream: str, port: int, cache: str) -> list[str]:
    return [sys.executable, "-m", "proxy", "--upstream", upstream, "--port", str(port), "--cache", cache]


async def latencies(url: str, payload: bytes, n: int, stream: bool) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as s:
        for i in range(n + 20):  # 20 warm-up requests
            t = time.perf_counter()
            async with s.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 200, r.status
            if i >= 20:
                out.append(time.perf_counter() - t)
    return out


async def throughput(url: str, payload: bytes, seconds: float, concurrency: int) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as s:
        async def worker():
            nonlocal done
            while time.perf_counter() < stop_at:
                async with s.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000


def measure(name: str, url: str, body: dict, args, rows: list, stream: bool = False, tput: bool = True) -> None:
    payload = orjson.dumps({**body, "stream": stream})
    lat = asyncio.run(latencies(url, payload, args.requests, stream))
    rps = asyncio.run(throughput(url, payload, args.seconds, args.concurrency)) if tput else None
    rows.append((name, statistics.median(lat) * 1000, pct(lat, 99), rps))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    body = claude_code_body()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    rows: list[tuple] = []
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    chat = "/v1/chat/completions"
    with ExitStack() as stack:
        stack.enter_context(process([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(up_port)]))
        time.sleep(0.5)
        redis_url = stack.enter_context(redis_server())
        measure("direct upstream (baseline), JSON", upstream + chat, body, args, rows)
        measure("direct upstream (baseline), stream", upstream + chat, body, args, rows, stream=True, tput=False)
        caches = [("none", "none"), ("memory", "memory")] + ([("redis", redis_url)] if redis_url else [])
        for label, cache in caches:
            port = free_port()
            stack.enter_context(process(proxy_argv(upstream, port, cache), f"http://127.0.0.1:{port}/health", env))
            url = f"http://127.0.0.1:{port}{chat}"
            if cache == "none":
                measure("proxy, cache none (miss path), JSON", url, body, args, rows)
                measure("proxy, cache none (miss path), stream", url, body, args, rows, stream=True, tput=False)
            else:
                measure(f"proxy hit, {label}, JSON", url, body, args, rows)
                measure(f"proxy hit, {label}, stream", url, body, args, rows, stream=True, tput=False)
    base_p50, base_rps = rows[0][1], rows[0][3]
    print(f"body {len(orjson.dumps(body)) // 1000} KB, {args.requests} requests at concurrency 1, "
          f"{args.seconds:.0f} s at concurrency {args.concurrency}")
    print(f"{'scenario':42s} {'p50 ms':>8s} {'p99 ms':>8s} {'vs base':>8s} {'req/s':>8s} {'vs base':>8s}")
    for name, p50, p99, rps in rows:
        rps_s = f"{rps:8.0f} {rps / base_rps:7.2f}x" if rps else f"{'':8s} {'':8s}"
        print(f"{name:42s} {p50:8.2f} {p99:8.2f} {p50 / base_p50:7.2f}x {rps_s}")


if __name__ == "__main__":
    main()
