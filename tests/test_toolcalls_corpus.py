"""The tool-call corpus: every case, non-stream and streamed under many chunkings, must give
exactly the expected content, calls and finish reason.

tests/toolcall_corpus/cases.json is the first corpus; documented.json holds cases written from
each format's own documentation (its `source` says which), with the expected result written
from that documentation before the parser for the format existed.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.completion import TextDelta, ToolCallDelta
from proxy.toolcalls import ToolCallScanner, extract

CORPUS = Path(__file__).parent / "toolcall_corpus"
CASES = [case for name in ("cases.json", "documented.json")
         for case in json.loads((CORPUS / name).read_text())["cases"]]
TOOLS = json.loads((CORPUS / "tools.json").read_text())


def tools_of(case: dict) -> list[dict] | None:
    return TOOLS[case["tools"]] if case["tools"] else None


def ids():
    counter = iter(range(10**9))
    return lambda: f"call_{next(counter)}"


def outcome(content, calls, reason) -> dict:
    return {"content": content, "calls": [{"name": c.name, "arguments": json.loads(c.arguments)} for c in calls],
            "finish_reason": reason}


def streamed(case: dict, pieces: list[str]) -> dict:
    scanner = ToolCallScanner(tools_of(case), ids())
    events = []
    for piece in pieces:
        events += scanner.feed(piece)
    tail, reason = scanner.finish(case["finish_reason"])
    events += tail
    assert all(e.text for e in events if isinstance(e, TextDelta)), "an empty content delta"
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [c.index for c in calls] == list(range(len(calls)))
    content = "".join(e.text for e in events if isinstance(e, TextDelta)) or None
    return outcome(content, [c.call for c in calls], reason)


def split_every(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_corpus_is_large_and_a_quarter_negative():
    negatives = [c for c in CASES if not c["expect"]["calls"]]
    assert len(CASES) >= 150 and len(negatives) * 4 >= len(CASES)
    assert len({c["id"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_non_stream(case):
    assert outcome(*extract(case["text"], tools_of(case), case["finish_reason"], ids())) == case["expect"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_stream_fixed_chunkings(case):
    text = case["text"]
    for size in (1, 2, 3, 5, 8, 13, 64):
        assert streamed(case, split_every(text, size)) == case["expect"], f"chunk size {size}"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_stream_random_splits(case):
    rng = random.Random(case["id"])
    text = case["text"]
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, max(2, len(text))), k=min(len(text) - 1, rng.randint(1, 12)))) if len(text) > 1 else []
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        assert streamed(case, pieces) == case["expect"], pieces


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stream_any_chunking_hypothesis(data):
    case = data.draw(st.sampled_from(CASES))
    text = case["text"]
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=20).map(sorted))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    assert streamed(case, pieces) == case["expect"]
