"""The upstream admission queue: cap, priority order, bound, cancellation."""
import asyncio

import pytest

from proxy.config import Settings
from proxy.errors import ProxyError
from proxy.generation.admission import BACKGROUND, CLASSIFY_CHARS, INTERACTIVE, Admission, Classifier


async def test_priority_order_then_fifo():
    adm = Admission(max_concurrency=1, max_queue=10)
    order: list[str] = []
    gate = asyncio.Event()

    async def job(name, prio):
        async with adm.slot(prio):
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(job("first", INTERACTIVE))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(job(n, p)) for n, p in
             [("bg1", BACKGROUND), ("i1", INTERACTIVE), ("bg2", BACKGROUND), ("i2", INTERACTIVE)]]
    await asyncio.sleep(0)
    assert adm.queued == 4 and adm.to_json()["queued_by_class"] == {"interactive": 2, "background": 2}
    gate.set()
    await asyncio.gather(first, *tasks)
    assert order == ["first", "i1", "i2", "bg1", "bg2"]
    assert adm.running == 0


async def test_full_queue_is_503_with_retry_after():
    adm = Admission(max_concurrency=1, max_queue=1, retry_after=7)
    gate = asyncio.Event()

    async def hold():
        async with adm.slot():
            await gate.wait()

    t1, t2 = asyncio.create_task(hold()), asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(ProxyError) as e:
        async with adm.slot():
            pass
    assert e.value.status == 503 and e.value.headers()["Retry-After"] == "7"
    gate.set()
    await asyncio.gather(t1, t2)


async def test_cancelled_waiter_leaves_the_queue_and_slot_passes_on():
    adm = Admission(max_concurrency=1, max_queue=5)
    gate = asyncio.Event()
    served = []

    async def job(name):
        async with adm.slot():
            served.append(name)
            await gate.wait()

    a = asyncio.create_task(job("a"))
    await asyncio.sleep(0)
    b, c = asyncio.create_task(job("b")), asyncio.create_task(job("c"))
    await asyncio.sleep(0)
    b.cancel()
    await asyncio.sleep(0)
    assert adm.queued == 1
    gate.set()
    await asyncio.gather(a, c)
    assert served == ["a", "c"] and adm.running == 0


def test_classifier_marks_claude_code_background_requests():
    s = Settings()
    cls = Classifier.build(s.background_patterns, s.background_max_tokens)
    assert cls.classify({"messages": [{"role": "user", "content": "Warmup"}]}) == BACKGROUND
    assert cls.classify({"messages": [{"role": "user", "content": "fix the bug"}], "max_tokens": 32}) == BACKGROUND
    assert cls.classify({"messages": [{"role": "system", "content": "Analyze if this message indicates a new "
                                       "conversation topic."}, {"role": "user", "content": "hello"}]}) == BACKGROUND
    assert cls.classify({"messages": [{"role": "user", "content": "fix the bug"}], "max_tokens": 4096}) == INTERACTIVE


def test_the_classifier_reads_only_the_opening_of_a_long_prompt():
    """An agent turn's long system prompt may quote a title prompt deep inside; it is still an
    agent turn (and its 50 KB are not searched three times per request)."""
    s = Settings()
    cls = Classifier.build(s.background_patterns, s.background_max_tokens)
    agent = "You are an agent. " * 200 + "Tools may ask to write a 5-10 word title for the session."
    assert len(agent) > CLASSIFY_CHARS
    assert cls.classify({"messages": [{"role": "system", "content": agent},
                                      {"role": "user", "content": "fix the bug"}]}) == INTERACTIVE
    assert cls.classify({"messages": [{"role": "system", "content": agent[-60:]},
                                      {"role": "user", "content": "fix the bug"}]}) == BACKGROUND
