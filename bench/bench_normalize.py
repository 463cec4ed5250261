"""Benchmark: parse + normalize + key for agent-sized request bodies.

Bodies are built from anyclaude's captured chat request (Claude Code's system prompt with a
billing line, 14 tools) plus a history of tool-call turns until they reach ~100 KB and ~1 MB.
The baseline, measured in the same run, is the least any cache in front of the server must do:
`orjson.loads` of the body and `sha256` of its raw bytes.

Run: /work/venv/bin/python bench/bench_normalize.py [--repeat N]
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from proxy.cache.keys import cache_key
from proxy.config import Settings
from proxy.normalize import NormalizeConfig, normalize_chat, parse_body

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
FIXTURE = FIXTURES / "anyclaude-chat-completions-turn1.json"
BILLING = "x-anthropic-billing-header: cc_version=2.0.14; cc_entrypoint=cli; cch=4f2a9;\n"
TARGETS_MS = {"100 KB": 0.5, "1 MB": 5.0}
SIZES = {"100 KB": 100_000, "1 MB": 1_000_000}


def agent_body(size: int) -> bytes:
    """The fixture body grown by Read/Bash turns (a 2 KB file each) to about `size` bytes."""
    body = orjson.loads(FIXTURE.read_bytes())["body"]
    body["messages"][0]["content"] = BILLING + body["messages"][0]["content"]
    turn = 0
    while len(orjson.dumps(body)) < size:
        turn += 1
        call_id = f"call_{turn}"
        arguments = orjson.dumps({"file_path": f"/src/module_{turn}.py"}).decode()
        body["messages"] += [
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "Read", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": call_id,
             "content": "".join(f"{n:>6}\tdef handler_{turn}_{n}(request): return request.json()  # é\n"
                                for n in range(30))},
            {"role": "user", "content": f"Now look at module {turn + 1}."},
        ]
    return orjson.dumps(body)


def time_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and 90th percentile of `repeat` timed calls, in milliseconds (after a warm-up)."""
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    cfg = NormalizeConfig.from_settings(Settings())
    endpoint = "/v1/chat/completions"

    row = "{:>8} {:>9} {:>5} | {:<30} {:>10} {:>8} {:>7}"
    print(row.format("body", "bytes", "msgs", "step", "median ms", "p90 ms", "target"))
    for label, size in SIZES.items():
        raw = agent_body(size)
        parsed = parse_body(raw)
        req = normalize_chat(parsed, cfg)
        steps: dict[str, Callable[[], object]] = {
            "baseline: orjson.loads+sha256": lambda: (orjson.loads(raw), hashlib.sha256(raw).hexdigest()),
            "parse_body": lambda: parse_body(raw),
            "normalize_chat": lambda: normalize_chat(parsed, cfg),
            "cache_key": lambda: cache_key(endpoint, cfg.model_identity, req.key_material),
            "total: parse+normalize+key": lambda: cache_key(
                endpoint, cfg.model_identity, normalize_chat(parse_body(raw), cfg).key_material),
        }
        for step, fn in steps.items():
            median, p90 = time_ms(fn, args.repeat)
            target = f"{TARGETS_MS[label]:.1f}" if step.startswith("total") else ""
            print(row.format(label, len(raw), len(parsed["messages"]), step, f"{median:.3f}", f"{p90:.3f}",
                             target))


if __name__ == "__main__":
    main()
