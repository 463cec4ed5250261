"""Warm-ups never compete with real turns: they run one at a time while their member is idle, a
real turn of another conversation stops the one under way, and one of the same conversation
waits for it (proxy/pool/pool.py; the upstream's part is a stand-in here, the real server's is
in tests/test_pool_real.py)."""
from __future__ import annotations

import asyncio
from dataclasses import replace

from proxy.cache.store import ResponseCache
from proxy.config import Settings
from proxy.generation.admission import INTERACTIVE
from proxy.pool.pool import Route, UpstreamPool
from proxy.upstream.status import UpstreamStatus


def make_pool() -> tuple[UpstreamPool, list[tuple[str, str]]]:
    settings = replace(Settings(), upstream=("http://a:1", "http://b:1"), cache="none")
    pool = UpstreamPool(settings, UpstreamStatus(), ResponseCache.from_settings(settings, None))
    log: list[tuple[str, str]] = []  # (event, prompt)
    release: dict[bytes, asyncio.Event] = {}

    async def prefill(member, payload: bytes) -> None:  # stands in for the 1-token request
        log.append(("start", payload.decode()))
        release[payload] = asyncio.Event()
        try:
            await release[payload].wait()
        except asyncio.CancelledError:
            log.append(("stopped", payload.decode()))
            raise
        log.append(("done", payload.decode()))

    pool._prefill = prefill  # type: ignore[method-assign]
    pool.release = release  # type: ignore[attr-defined]
    return pool, log


async def until(check) -> None:
    async with asyncio.timeout(5):  # fails, rather than hangs, when it never comes
        while not check():
            await asyncio.sleep(0)


async def test_a_real_turn_of_another_conversation_stops_the_warm_up_and_the_rest_go_on_when_idle():
    pool, log = make_pool()
    member = pool.members[0]
    replay = asyncio.create_task(pool._replay(member, [("c2", b"p2"), ("c1", b"p1")]))
    await until(lambda: log)
    assert member.warming[0] == "c2" and log == [("start", "p2")]
    async with member.admission.slot(INTERACTIVE):  # a real turn of c9 arrives and runs
        await pool.make_way(Route(member, "affinity", "c9"))
        await until(lambda: ("stopped", "p2") in log)
        await asyncio.sleep(0.01)
        assert ("start", "p1") not in log  # nothing is warmed while the turn runs
    await until(lambda: ("start", "p1") in log)  # idle again: the next one
    pool.release[b"p1"].set()
    await replay
    assert member.warmed == 1 and member.warming is None


async def test_a_real_turn_of_the_conversation_being_warmed_waits_for_it():
    pool, log = make_pool()
    member = pool.members[0]
    replay = asyncio.create_task(pool._replay(member, [("c1", b"p1")]))
    await until(lambda: member.warming is not None)
    turn = asyncio.create_task(pool.make_way(Route(member, "affinity", "c1")))
    await asyncio.sleep(0.01)
    assert not turn.done()  # its prefix is being prefilled: it goes once that is done
    pool.release[b"p1"].set()
    await turn
    await replay
    assert log == [("start", "p1"), ("done", "p1")] and member.warmed == 1
