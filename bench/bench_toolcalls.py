"""Tool-call extraction cost, each figure beside a baseline measured in the same run.

    /work/venv/bin/python bench/bench_toolcalls.py

- per streamed chunk: ToolCallScanner.feed on ~4-character chunks (about one token each) vs
  just collecting the chunks (list append + join);
- a 100 KB response, non-stream: extract() vs a plain json.loads of a 100 KB chat completion body
  holding the same text (the work a proxy does anyway);
- a 100 KB response, streamed in 4-character chunks: all feeds vs collecting the chunks;
- the corpus score per format (non-stream and chunk sizes 1, 3, 7).
"""
from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from proxy.toolcalls import ToolCallScanner, extract  # noqa: E402

CORPUS = ROOT / "tests" / "toolcall_corpus"
TOOLS = json.loads((CORPUS / "tools.json").read_text())
CLAUDE_TOOLS = TOOLS["claude_code"]
CHUNK = 4  # characters per streamed chunk, about one token


def best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def chunks(text: str) -> list[str]:
    return [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)]


def stream(text_chunks: list[str]) -> None:
    scanner = ToolCallScanner(CLAUDE_TOOLS, lambda: "id")
    for c in text_chunks:
        scanner.feed(c)
    scanner.finish("stop")


def collect(text_chunks: list[str]) -> None:
    parts = []
    for c in text_chunks:
        parts.append(c)
    "".join(parts)


def agent_turn() -> str:
    """A typical agent turn: some prose with markdown, then a Qwen3-Coder Edit call."""
    prose = ("I looked at `proxy/server/app.py`. The handler builds the response twice; the fix is to "
             "build it once and reuse it.\n\n- step one\n- step two\n\n") * 8
    code = "    def handler(self, request):\n        return self.build(request)\n" * 20
    return (prose + "<tool_call>\n<function=Edit>\n<parameter=file_path>\n/src/app.py\n</parameter>\n"
            f"<parameter=old_string>\n{code}</parameter>\n<parameter=new_string>\n{code}</parameter>\n"
            "</function>\n</tool_call>")


def hundred_kb_prose() -> str:
    para = ("Here is the plan for the change. We read the configuration, check every limit, "
            "and keep the `Read` and `Bash` tools for later.\n\n```python\nx = {'a': 1}\n```\n\n")
    return (para * (100_000 // len(para) + 1))[:100_000]


def hundred_kb_call() -> str:
    content = ("line of a large file being written by the model\n" * 2100)[:100_000]
    return "Writing the file.\n" + json.dumps({"name": "Write", "arguments": {"file_path": "/big.txt", "content": content}})


def row(name: str, ours: float, base: float, unit: str, scale: float) -> str:
    return f"{name:<62} {ours * scale:>9.2f} {base * scale:>9.2f} {unit:<4} {ours / base:>7.1f}x"


def corpus_scores() -> dict[str, tuple[int, int]]:
    cases = json.loads((CORPUS / "cases.json").read_text())["cases"]
    score: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in cases:
        tools = TOOLS[case["tools"]] if case["tools"] else None
        want = case["expect"]
        results = []
        for size in (None, 1, 3, 7):
            text = case["text"]
            if size is None:
                content, calls, reason = extract(text, tools, case["finish_reason"])
            else:
                scanner = ToolCallScanner(tools)
                events = [e for i in range(0, len(text), size) for e in scanner.feed(text[i:i + size])]
                tail, reason = scanner.finish(case["finish_reason"])
                events += tail
                content = "".join(e.text for e in events if hasattr(e, "text")) or None
                calls = [e.call for e in events if hasattr(e, "call")]
            got = {"content": content, "calls": [{"name": c.name, "arguments": json.loads(c.arguments)} for c in calls],
                   "finish_reason": reason}
            results.append(got == want)
        score[case["format"]][0] += all(results)
        score[case["format"]][1] += 1
    return {k: (v[0], v[1]) for k, v in sorted(score.items())}


def main() -> None:
    turn = agent_turn()
    turn_chunks = chunks(turn)
    n = len(turn_chunks)
    print(f"{'measure':<62} {'ours':>9} {'baseline':>9} {'unit':<4} {'ratio':>8}")
    print(row(f"per chunk, agent turn ({len(turn) // 1000} KB, {n} chunks)",
              best_of(lambda: stream(turn_chunks)) / n, best_of(lambda: collect(turn_chunks)) / n, "us", 1e6))

    call = hundred_kb_call()
    hermes = "Writing the file.\n<tool_call>" + call.split("\n", 1)[1] + "</tool_call>"
    for label, text in (("100 KB prose", hundred_kb_prose()), ("100 KB tail JSON call", call),
                        ("100 KB Hermes call", hermes)):
        body = json.dumps({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})
        print(row(f"{label}, non-stream: extract vs json.loads(body)",
                  best_of(lambda: extract(text, CLAUDE_TOOLS, "stop")), best_of(lambda: json.loads(body)), "ms", 1e3))
        text_chunks = chunks(text)
        print(row(f"{label}, streamed in {len(text_chunks)} chunks, total",
                  best_of(lambda: stream(text_chunks), 3), best_of(lambda: collect(text_chunks), 3), "ms", 1e3))
        print(row(f"{label}, streamed, per chunk",
                  best_of(lambda: stream(text_chunks), 3) / len(text_chunks),
                  best_of(lambda: collect(text_chunks), 3) / len(text_chunks), "us", 1e6))

    print()
    print(f"{'corpus format':<20} {'passed':>7} / cases (non-stream and chunks of 1, 3, 7)")
    total = [0, 0]
    for fmt, (ok, count) in corpus_scores().items():
        total[0] += ok
        total[1] += count
        print(f"{fmt:<20} {ok:>7} / {count}")
    print(f"{'all':<20} {total[0]:>7} / {total[1]}")


if __name__ == "__main__":
    main()
