"""Run every benchmark in one command: each `bench/bench_*.py` as its own process, its printed
tables shown as they come, then one summary line per benchmark; `--soak` adds the memory soak.

Why subprocesses: a benchmark's imports, caches and event loops cannot skew the next one, and a
benchmark that crashes or hangs is reported (and timed out) without stopping the rest.

Run: /work/venv/bin/python bench/run.py [--only NAME ...] [--soak [--minutes M]] [--list]
Exit code: 0 when every benchmark exited 0.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
# A benchmark that runs longer than this is stuck (the slowest take about a minute).
BENCH_TIMEOUT = 900.0


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int | None  # None: timed out
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def discover(directory: Path, only: list[str]) -> list[Path]:
    """bench_*.py files in name order; `only` keeps those whose name contains one of its words."""
    found = sorted(directory.glob("bench_*.py"))
    return [p for p in found if not only or any(word in p.stem for word in only)]


def run_one(path: Path, args: list[str], timeout: float) -> Outcome:
    """Run one benchmark with its output passed through; its exit code and duration."""
    print(f"\n=== {path.stem} {' '.join(args)}".rstrip(), flush=True)
    start = time.monotonic()
    try:
        code: int | None = subprocess.run([sys.executable, str(path), *args], cwd=ROOT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        print(f"!!! {path.stem} timed out after {timeout:.0f}s", flush=True)
        code = None
    return Outcome(path.stem, code, time.monotonic() - start)


def summary(outcomes: list[Outcome]) -> list[str]:
    width = max((len(o.name) for o in outcomes), default=4)
    lines = [f"{'benchmark':<{width}}  result      time"]
    for o in outcomes:
        result = "ok" if o.ok else ("TIMEOUT" if o.returncode is None else f"FAILED({o.returncode})")
        lines.append(f"{o.name:<{width}}  {result:<10} {o.seconds:6.1f}s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=[], help="run benchmarks whose name contains one of these")
    parser.add_argument("--soak", action="store_true", help="also run the memory soak (bench/soak.py)")
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (default 10)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--dir", type=Path, default=BENCH_DIR, help=argparse.SUPPRESS)  # tests
    parser.add_argument("--timeout", type=float, default=BENCH_TIMEOUT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    benches = discover(args.dir, args.only)
    if args.list:
        for path in benches:
            print(path.stem)
        return 0
    outcomes = [run_one(path, [], args.timeout) for path in benches]
    if args.soak:
        outcomes.append(run_one(args.dir / "soak.py", ["--minutes", f"{args.minutes:g}"],
                                args.minutes * 60 + args.timeout))
    print("\n=== summary")
    for line in summary(outcomes):
        print(line)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
