"""The response cache through the proxy: hits, replay, single-flight, what is never stored."""
from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest

from tests.rig.scripted_upstream import Script

CHAT = {"model": "m", "messages": [{"role": "user", "content": "cache me"}]}
URL = "/v1/chat/completions"


@pytest.fixture(params=["memory", "redis"])
def cache_url(request):
    if request.param == "memory":
        return "memory"
    return request.getfixturevalue("redis_server").url


def post(proxy, body=CHAT, **kw):
    return httpx.post(proxy.url + URL, json=body, timeout=30, **kw)


def stream_text(proxy, body=CHAT, headers=None) -> tuple[httpx.Headers, str, list[dict]]:
    with httpx.stream("POST", proxy.url + URL, json={**body, "stream": True}, headers=headers, timeout=30) as r:
        lines = list(r.iter_lines())
        hdrs = r.headers
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert lines[-2:] == ["data: [DONE]", ""] or lines[-1] == "data: [DONE]"
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
    return hdrs, text, chunks


def test_hit_after_miss(scripted, start_proxy, cache_url):
    scripted.script(Script(text="cached answer"))
    proxy = start_proxy(scripted.url, cache=cache_url)
    first, second = post(proxy), post(proxy)
    assert first.headers["X-Cache-Status"] == "MISS" and second.headers["X-Cache-Status"] == "HIT"
    assert first.headers["X-Cache-Key"] == second.headers["X-Cache-Key"]
    assert first.headers["X-Cache-Key"].startswith("mlxproxy:v1:")
    assert "Age" in second.headers and "Age" not in first.headers
    a, b = first.json(), second.json()
    assert a["choices"] == b["choices"] and a["usage"] == b["usage"]
    assert a["id"] != b["id"]  # hits get a fresh id
    assert scripted.chat_calls == 1


def test_stream_and_non_stream_share_entries(scripted, start_proxy, cache_url):
    text = "a reply long enough to be replayed in several slices of content"
    scripted.script(Script(text=text))
    proxy = start_proxy(scripted.url, cache=cache_url)
    assert post(proxy).json()["choices"][0]["message"]["content"] == text
    hdrs, streamed, chunks = stream_text(proxy)
    assert hdrs["X-Cache-Status"] == "HIT" and streamed == text
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) > 1
    other = {**CHAT, "messages": [{"role": "user", "content": "stream first"}]}
    hdrs, streamed, _ = stream_text(proxy, other)
    assert hdrs["X-Cache-Status"] == "MISS"
    again = post(proxy, other)
    assert again.headers["X-Cache-Status"] == "HIT" and again.json()["choices"][0]["message"]["content"] == text
    assert scripted.chat_calls == 2


def test_tool_calls_are_stored_extracted(scripted, start_proxy):
    tools = [{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}]
    scripted.script(Script(text='<tool_call>\n{"name": "Read", "arguments": {"file_path": "a.py"}}\n</tool_call>'))
    proxy = start_proxy(scripted.url)
    body = {**CHAT, "tools": tools}
    first, second = post(proxy, body).json(), post(proxy, body).json()
    for out in (first, second):
        call = out["choices"][0]["message"]["tool_calls"][0]
        assert call["function"] == {"name": "Read", "arguments": '{"file_path":"a.py"}'} or \
            json.loads(call["function"]["arguments"]) == {"file_path": "a.py"}
        assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert first["choices"][0]["message"]["tool_calls"] == second["choices"][0]["message"]["tool_calls"]
    assert scripted.chat_calls == 1


@pytest.mark.parametrize("script", [
    Script(status=500),
    Script(raw_body=b"not json at all", status=200, text=""),
    Script(text="cut short", close_after=1),
    Script(text="no end", send_done=False),
    Script(text="", chunks=[]),  # no output at all
], ids=["500", "garbage", "cut", "no-done", "empty"])
def test_failures_are_never_stored(scripted, start_proxy, script):
    scripted.script(script)
    proxy = start_proxy(scripted.url, idle_timeout=2.0)
    post(proxy)
    scripted.script(Script(text="good"))
    r = post(proxy)
    assert r.status_code == 200 and r.headers["X-Cache-Status"] == "MISS"
    assert r.json()["choices"][0]["message"]["content"] == "good"
    assert scripted.chat_calls == 2


def test_timeout_is_never_stored(scripted, start_proxy):
    scripted.script(Script(text="slow", first_delay=3.0))
    proxy = start_proxy(scripted.url, first_token_timeout=0.5)
    r = post(proxy)
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    scripted.script(Script(text="fast"))
    assert post(proxy).headers["X-Cache-Status"] == "MISS"


def test_twenty_identical_concurrent_requests_one_upstream_call(scripted, start_proxy, cache_url):
    scripted.script(Script(text="shared result", first_delay=0.5))
    proxy = start_proxy(scripted.url, cache=cache_url)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: post(proxy), range(20)))
    assert all(r.status_code == 200 for r in results)
    assert {r.json()["choices"][0]["message"]["content"] for r in results} == {"shared result"}
    statuses = sorted(r.headers["X-Cache-Status"] for r in results)
    assert statuses.count("MISS") == 1 and set(statuses) <= {"MISS", "COALESCED", "HIT"}
    assert scripted.chat_calls == 1


def test_stream_follower_gets_the_events_so_far_then_live(scripted, start_proxy):
    pieces = [f"w{i} " for i in range(12)]
    scripted.script(Script(chunks=pieces, delay=0.05))
    proxy = start_proxy(scripted.url)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        leader = pool.submit(stream_text, proxy)
        time.sleep(0.25)  # the leader's stream is half way
        follower = pool.submit(stream_text, proxy)
        (lh, ltext, _), (fh, ftext, _) = leader.result(), follower.result()
    assert ltext == ftext == "".join(pieces)
    assert lh["X-Cache-Status"] == "MISS" and fh["X-Cache-Status"] == "COALESCED"
    assert scripted.chat_calls == 1


def test_cache_control_headers(scripted, start_proxy):
    scripted.script(Script(text="v1"))
    proxy = start_proxy(scripted.url)
    assert post(proxy, headers={"Cache-Control": "no-store"}).headers["X-Cache-Status"] == "MISS"
    assert post(proxy).headers["X-Cache-Status"] == "MISS"  # no-store wrote nothing
    assert post(proxy).headers["X-Cache-Status"] == "HIT"
    scripted.script(Script(text="v2"))
    refreshed = post(proxy, headers={"Cache-Control": "no-cache"})
    assert refreshed.headers["X-Cache-Status"] == "REFRESH"
    assert post(proxy).json()["choices"][0]["message"]["content"] == "v2"  # refresh stored v2
    time.sleep(1.1)
    assert post(proxy, headers={"Cache-Control": "max-age=1"}).headers["X-Cache-Status"] == "MISS"
    both = post(proxy, headers={"Cache-Control": "no-cache, no-store"})
    assert both.headers["X-Cache-Status"] == "BYPASS"
    ns = post(proxy, headers={"X-Cache-Namespace": "team-b"})
    assert ns.headers["X-Cache-Status"] == "MISS" and ":team-b:" in ns.headers["X-Cache-Key"]


def test_cache_none_bypasses(scripted, start_proxy):
    proxy = start_proxy(scripted.url, cache="none")
    assert [post(proxy).headers["X-Cache-Status"] for _ in range(2)] == ["BYPASS", "BYPASS"]
    assert scripted.chat_calls == 2


def test_client_that_leaves_does_not_cancel_a_cacheable_generation(scripted, start_proxy):
    scripted.script(Script(chunks=[f"t{i} " for i in range(10)], delay=0.1))
    proxy = start_proxy(scripted.url)
    with httpx.stream("POST", proxy.url + URL, json={**CHAT, "stream": True}, timeout=30) as r:
        for line in r.iter_lines():
            if '"content"' in line:
                break  # leave after the first token
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proxy.state.pipeline.flights:
        time.sleep(0.05)
    retry = post(proxy)
    assert retry.headers["X-Cache-Status"] == "HIT"
    assert retry.json()["choices"][0]["message"]["content"] == "".join(f"t{i} " for i in range(10))
    assert scripted.chat_calls == 1 and scripted.cancelled == 0


def _leave_after_the_first_content(url: str, body: dict, headers: dict | None = None) -> None:
    with httpx.stream("POST", url + URL, json={**body, "stream": True}, headers=headers, timeout=30) as r:
        for line in r.iter_lines():
            if '"content"' in line:
                break


def _wait_until_the_upstream_is_idle(scripted, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and scripted.active:
        time.sleep(0.05)


def test_uncacheable_generation_is_cancelled_when_its_client_leaves(scripted, start_proxy):
    scripted.script(Script(chunks=[f"t{i} " for i in range(50)], delay=0.1))
    proxy = start_proxy(scripted.url)
    _leave_after_the_first_content(proxy.url, CHAT, {"Cache-Control": "no-store"})
    _wait_until_the_upstream_is_idle(scripted)
    assert scripted.active == 0 and scripted.cancelled == 1


@pytest.mark.parametrize("background", [
    {"messages": [{"role": "user", "content": "Warmup"}]},  # Claude Code's warm-up
    {"messages": [{"role": "user", "content": "long question"}], "max_tokens": 32},  # a tiny answer (a title)
])
def test_a_background_generation_is_cancelled_when_its_client_leaves(scripted, start_proxy, background):
    """Nobody retries a warm-up or a title (Claude Code exits without waiting for it), so it
    does not keep the server busy after its client left, cacheable or not."""
    scripted.script(Script(chunks=[f"t{i} " for i in range(50)], delay=0.1))
    proxy = start_proxy(scripted.url)
    _leave_after_the_first_content(proxy.url, {"model": "m", **background})
    _wait_until_the_upstream_is_idle(scripted)
    assert scripted.active == 0 and scripted.cancelled == 1
    assert not proxy.state.pipeline.flights


def test_health_and_admin_endpoints(scripted, start_proxy, cache_url):
    proxy = start_proxy(scripted.url, cache=cache_url)
    key = post(proxy).headers["X-Cache-Key"]
    post(proxy)
    health = httpx.get(proxy.url + "/health").json()
    cache = health["cache"]
    assert {"hits", "misses", "total_requests", "hit_rate", "cached_items", "backend", "state"} <= set(cache)
    assert (cache["hits"], cache["misses"], cache["cached_items"], cache["hit_rate"]) == (1, 1, 1, "50.0%")
    assert httpx.delete(proxy.url + "/cache/" + key).status_code == 200
    assert httpx.delete(proxy.url + "/cache/" + key).status_code == 404
    post(proxy)
    assert httpx.post(proxy.url + "/cache/flush").json()["flushed"] == 1
    assert httpx.get(proxy.url + "/cache/stats").json()["cached_items"] == 0



def test_a_client_that_leaves_while_the_lease_is_taken_leaves_no_orphan_flight(scripted, start_proxy, server_loop):
    """Cancelled between registering its flight and starting its producer (a slow shared
    cache), a request must not leave a flight that later identical requests would wait on."""
    import asyncio

    from proxy.cache.policy import CacheControl
    from proxy.config import Settings
    from proxy.normalize import NormalizeConfig, normalize_chat

    proxy = start_proxy(scripted.url)
    pipeline = proxy.state.pipeline
    req = normalize_chat(CHAT, NormalizeConfig.from_settings(Settings()))

    async def leave_while_leasing():
        asked = asyncio.Event()

        async def slow_lease(key):
            asked.set()
            await asyncio.sleep(30)

        pipeline.cache.acquire_lease = slow_lease
        opening = asyncio.ensure_future(pipeline.open("k", req, CacheControl()))
        await asked.wait()
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        return dict(pipeline.flights)

    assert server_loop.run(leave_while_leasing()) == {}
