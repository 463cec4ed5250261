"""The pool: what routing costs per request, and what a warm-up after a restart buys.

    python bench/bench_pool.py [--requests 300] [--rounds 3] [--skip-warmup]

Routing (every request a cache miss with a new ~100 KB Claude-Code-shaped body, concurrency 1,
each scenario alternating with its baseline so the machine's noise falls on both):
  * a proxy in front of one instant upstream (bench/fast_upstream.py): the baseline, no routing;
  * the same proxy in front of a pool of three: the conversation digest, the routing rule and
    the route remembered in-process; with a Redis cache, also the route read from Redis.
  The difference of the p50s is routing's cost (target: under 1 ms).
Warm-up (real mlx_lm.server on the generated tiny model, through `mlx-launch`): a conversation
of three turns, the server killed (the launcher restarts it), then, once the warm-ups are done,
turn four, streamed. Time to its first token and the prompt tokens the server already held,
with `--warmup-prompts 4` and with 0, in the same run (median of --rounds conversations each;
from the second round on, the warm-up replays the earlier rounds' conversations too).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import sys
import time
import uuid
from contextlib import ExitStack

import aiohttp
import httpx

from bench_proxy import (JSON, ROOT, WARMUP, UniqueBodies, claude_code_body, free_port, process, proxy_argv,
                         redis_server)

FIXTURE = ROOT / "tests" / "fixtures" / "anyclaude-chat-completions-turn1.json"
POOL_SIZE = 3


async def paired(base_url: str, url: str, bodies: UniqueBodies, n: int) -> tuple[list[float], list[float]]:
    """(baseline seconds, scenario seconds), requests alternating A B B A ..."""
    out: dict[str, list[float]] = {base_url: [], url: []}
    async with aiohttp.ClientSession() as s:
        for i in range(n + WARMUP):
            for target in ((base_url, url) if i % 2 else (url, base_url)):
                t = time.perf_counter()
                async with s.post(target, data=bodies.next(False), headers=JSON) as r:
                    await r.read()
                    assert r.status == 200, (target, r.status)
                if i >= WARMUP:
                    out[target].append(time.perf_counter() - t)
    return out[base_url], out[url]


def routing_table(args, stack: ExitStack) -> None:
    ups = []
    for _ in range(POOL_SIZE):
        port = free_port()
        stack.enter_context(process([sys.executable, str(ROOT / "bench" / "fast_upstream.py"), str(port)],
                                    f"http://127.0.0.1:{port}/ready"))
        ups.append(f"http://127.0.0.1:{port}")
    redis_url = stack.enter_context(redis_server())

    def proxy(upstreams: list[str], cache: str) -> str:
        port = free_port()
        flags = [f for u in upstreams[1:] for f in ("--upstream", u)]
        stack.enter_context(process(proxy_argv(upstreams[0], port, cache, *flags), f"http://127.0.0.1:{port}/health",
                                    dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT))
        return f"http://127.0.0.1:{port}/v1/chat/completions"

    caches = ["memory"] + ([redis_url] if redis_url else [])
    bodies = UniqueBodies(claude_code_body())
    print(f"routing: unique {len(bodies.next(False)) // 1000} KB bodies, {args.requests} misses per scenario at "
          f"concurrency 1, alternating with the one-upstream proxy on the same cache")
    print(f"{'scenario':44s} {'p50 ms':>8s} {'one upstream':>13s} {'routing +ms':>12s}")
    for cache in caches:
        single, pool = proxy(ups[:1], cache), proxy(ups, cache)
        base, scenario = asyncio.run(paired(single, pool, bodies, args.requests))
        b, p = statistics.median(base) * 1000, statistics.median(scenario) * 1000
        name = f"pool of {POOL_SIZE}, cache {'redis' if cache != 'memory' else 'memory'}"
        print(f"{name:44s} {p:8.2f} {b:13.2f} {p - b:+12.2f}")


# --- warm-up -------------------------------------------------------------------------------------

def _system_text() -> str:
    return json.loads(FIXTURE.read_text())["body"]["messages"][0]["content"]


def _turn(base: str, messages: list[dict], question: str) -> tuple[float, dict]:
    """One streamed turn: seconds to its first content, its usage; the answer joins `messages`."""
    messages.append({"role": "user", "content": question})
    body = {"messages": messages, "max_tokens": 80, "stream": True, "stream_options": {"include_usage": True}}
    begun, first, usage, text = time.perf_counter(), None, {}, []
    with httpx.stream("POST", base + "/v1/chat/completions", json=body, timeout=300) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                for choice in event["choices"]:
                    piece = choice["delta"].get("content")
                    if piece:
                        first = first if first is not None else time.perf_counter() - begun
                        text.append(piece)
                usage = event.get("usage") or usage
    messages.append({"role": "assistant", "content": "".join(text)})
    return (first if first is not None else time.perf_counter() - begun), usage


def _health(base: str) -> dict:
    return httpx.get(base + "/health", timeout=10).json()


def _wait(what: str, check, timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _child_pid(base: str) -> int:
    m = re.search(r"pid (\d+)", _health(base)["upstream"]["detail"])
    assert m, _health(base)["upstream"]
    return int(m.group(1))


def warm_case(base: str, warmup: bool) -> tuple[float, int, int]:
    """(seconds to the first token of the turn after a restart, its cached tokens, its prompt tokens)."""
    messages = [{"role": "system", "content": f"Session {uuid.uuid4().hex}.\n{_system_text()}"}]
    for i in range(3):
        _turn(base, messages, f"Question {i + 1}: what does step {i + 1} change?")
    before = _health(base)
    restarts, warmed = before["upstream"]["restarts"], before["upstreams"][0]["warmed"]
    os.kill(_child_pid(base), signal.SIGKILL)  # a crash: the launcher restarts its child
    _wait("the restart", lambda: (h := _health(base))["upstream"]["restarts"] > restarts
          and h["upstream"]["state"] == "ready")
    if warmup:  # the next turn comes once the warm-ups are done (a user reads the last answer)
        _wait("the warm-up", lambda: (m := _health(base)["upstreams"][0])["warmed"] > warmed
              and not m["warm_pending"])
    ttft, usage = _turn(base, messages, "Question 4: and then?")
    return ttft, (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0, usage.get("prompt_tokens", 0)


def warmup_table(args, stack: ExitStack) -> None:
    bases = {}
    for prompts in (4, 0):
        port = free_port()
        stack.enter_context(process([sys.executable, "-m", "launcher", "--model", "tiny-random", "--port", str(port),
                                     "--cache", "none", "--warmup-prompts", str(prompts),
                                     "--pool-health-interval", "0.2"],
                                    f"http://127.0.0.1:{port}/health", dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT))
        bases[prompts] = f"http://127.0.0.1:{port}"
        _wait("the model", lambda b=bases[prompts]: _health(b)["model_loaded"])
    results: dict[int, list[tuple[float, int, int]]] = {4: [], 0: []}
    for _ in range(args.rounds):  # alternating, so both see the same machine
        for prompts, base in bases.items():
            results[prompts].append(warm_case(base, warmup=prompts > 0))
    print(f"\nwarm-up: real mlx_lm.server (tiny model) under mlx-launch; 3 turns, the child killed and "
          f"restarted, then turn 4; median of {args.rounds}")
    print(f"{'scenario':44s} {'1st token ms':>13s} {'cached':>8s} {'prompt':>8s}")
    ttft = {}
    for prompts, rows in results.items():
        ttft[prompts] = statistics.median(r[0] for r in rows) * 1000
        cached, prompt = statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)
        print(f"{f'--warmup-prompts {prompts}':44s} {ttft[prompts]:13.1f} {cached:8.0f} {prompt:8.0f}")
    print(f"first token after a restart, warmed vs not: {ttft[4] / ttft[0]:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300, help="routing samples per scenario")
    ap.add_argument("--rounds", type=int, default=3, help="warm-up conversations per setting")
    ap.add_argument("--skip-warmup", action="store_true", help="just the routing table")
    args = ap.parse_args()
    with ExitStack() as stack:
        routing_table(args, stack)
    if not args.skip_warmup:
        with ExitStack() as stack:
            warmup_table(args, stack)


if __name__ == "__main__":
    main()
