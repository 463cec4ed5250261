"""Several proxies on one real Redis (a team of Macs): one generation, take-over, Redis faults."""
from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest
import redis

from launcher.cli import free_port
from proxy.cache.backends.base import EVENTS_SUFFIX, LEASE_SUFFIX
from proxy.cache.keys import KEY_PREFIX
from proxy.cache.policy import parse_cache_control
from proxy.cache.relay import encode_items
from proxy.completion import Finish, TextDelta
from tests.rig.scripted_upstream import Script

CHAT = {"model": "m", "messages": [{"role": "user", "content": "shared question"}]}
URL = "/v1/chat/completions"


@pytest.fixture
def proxy_process():
    """proxy_process(upstream, cache, *flags) -> base URL of a `python -m proxy` process."""
    procs: list[subprocess.Popen] = []

    def start(upstream: str, cache: str, *flags: str) -> tuple[str, subprocess.Popen]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "proxy", "--upstream", upstream, "--port", str(port),
                                 "--cache", cache, *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/health/live", timeout=1)
                return url, proc
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "proxy process did not start"
                time.sleep(0.05)

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def post(base: str, body=CHAT):
    return httpx.post(base + URL, json=body, timeout=60)


def test_two_proxy_processes_share_one_generation(scripted, start_proxy, proxy_process, redis_server):
    scripted.script(Script(text="one answer for the team", first_delay=1.0))
    here = start_proxy(scripted.url, cache=redis_server.url)
    there, _ = proxy_process(scripted.url, redis_server.url)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = pool.map(post, [here.url, there])
    assert a.status_code == b.status_code == 200
    assert a.json()["choices"][0]["message"]["content"] == b.json()["choices"][0]["message"]["content"]
    assert sorted([a.headers["X-Cache-Status"], b.headers["X-Cache-Status"]]) == ["COALESCED", "MISS"]
    assert scripted.chat_calls == 1
    # and afterwards both serve it from the shared entry
    assert post(here.url).headers["X-Cache-Status"] == post(there).headers["X-Cache-Status"] == "HIT"
    assert scripted.chat_calls == 1


def leader_started(scripted, ask) -> None:
    """Send `ask()` in the background (its proxy may be killed under it) and return once the
    upstream has received the generation it leads."""
    def run():
        try:
            ask()
        except httpx.TransportError:
            pass

    threading.Thread(target=run, daemon=True).start()
    upstream_reached(scripted)


def upstream_reached(scripted) -> None:
    """Return once the upstream has received a generation (the leader's)."""
    deadline = time.monotonic() + 10
    while scripted.chat_calls == 0:
        assert time.monotonic() < deadline, "the leader never reached the upstream"
        time.sleep(0.01)


def test_follower_takes_over_when_the_leading_proxy_dies(scripted, start_proxy, proxy_process, redis_server):
    scripted.script(Script(text="never finished", first_delay=60), Script(text="finished by the follower"))
    leader_url, leader = proxy_process(scripted.url, redis_server.url, "--cache-lease-ttl", "1")
    follower = start_proxy(scripted.url, cache=redis_server.url, cache_lease_ttl=1.0)
    leader_started(scripted, lambda: httpx.post(leader_url + URL, json=CHAT, timeout=90))
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(r=post(follower.url)))
    waiter.start()
    time.sleep(0.5)  # the follower is waiting on the leader's lease
    leader.kill()
    killed = time.monotonic()
    waiter.join(30)
    r = result["r"]
    assert r.status_code == 200 and r.headers["X-Cache-Status"] == "COALESCED"
    assert r.json()["choices"][0]["message"]["content"] == "finished by the follower"
    assert time.monotonic() - killed < 5  # within a lease TTL and a poll, not the total timeout
    assert scripted.chat_calls == 2


def test_redis_killed_under_load_never_fails_a_client(scripted, start_proxy, redis_server):
    scripted.script(Script(text="steady"))
    # no in-process near copy: every lookup goes to Redis (the next test covers the near copy)
    proxy = start_proxy(scripted.url, cache=redis_server.url, redis_timeout=0.2, cache_near_ttl=0)
    bodies = [{**CHAT, "seed": i} for i in range(4)]
    results: list[httpx.Response] = []
    stop = threading.Event()

    def load():
        i = 0
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                results.append(client.post(proxy.url + URL, json=bodies[i % len(bodies)]))
                i += 1

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(1.0)
    redis_server.kill()
    time.sleep(1.5)
    redis_server.start()
    time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join(30)
    assert results and all(r.status_code == 200 for r in results)
    statuses = {r.headers["X-Cache-Status"] for r in results}
    assert "HIT" in statuses and "ERROR" in statuses
    # hits resume by themselves once Redis is back (the breaker probes it)
    deadline = time.monotonic() + 15
    while post(proxy.url, bodies[0]).headers["X-Cache-Status"] != "HIT":
        assert time.monotonic() < deadline, "hits did not resume after Redis came back"
        time.sleep(0.2)
    health = httpx.get(proxy.url + "/health").json()
    assert health["cache"]["state"] == "ok" and health["cache"]["backend"] == "redis"


def test_near_copy_serves_repeats_without_redis_and_flush_clears_it(scripted, start_proxy, redis_server):
    scripted.script(Script(text="near"))
    proxy = start_proxy(scripted.url, cache=redis_server.url, cache_near_ttl=30)
    assert post(proxy.url).headers["X-Cache-Status"] == "MISS"
    redis_server.kill()  # a repeat on the same Mac is served from the in-process copy
    hit = post(proxy.url)
    assert hit.headers["X-Cache-Status"] == "HIT" and hit.json()["choices"][0]["message"]["content"] == "near"
    other = post(proxy.url, {**CHAT, "seed": 7})  # anything else fails open
    assert other.status_code == 200 and other.headers["X-Cache-Status"] == "ERROR"
    redis_server.start()
    httpx.post(proxy.url + "/cache/flush")
    assert post(proxy.url).headers["X-Cache-Status"] != "HIT"


def _stream_lines(base: str, body=CHAT, started: threading.Event | None = None):
    """(seconds since the request, line) for each non-empty SSE line; sets `started` (if
    given) once some content came through."""
    begun = time.monotonic()
    out = []
    with httpx.stream("POST", base + URL, json={**body, "stream": True}, timeout=60) as r:
        status = r.headers.get("X-Cache-Status")
        for line in r.iter_lines():
            if line:
                out.append((time.monotonic() - begun, line))
                if started is not None and '"content"' in line:
                    started.set()
    return status, out


def test_stream_follower_on_another_proxy_follows_live(scripted, start_proxy, proxy_process, redis_server):
    pieces = [f"word{i} " for i in range(12)]
    scripted.script(Script(chunks=pieces, delay=0.1))  # ~1.1 s of generation
    leader_url, _ = proxy_process(scripted.url, redis_server.url)
    follower = start_proxy(scripted.url, cache=redis_server.url)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        leading = pool.submit(_stream_lines, leader_url)
        upstream_reached(scripted)
        following = pool.submit(_stream_lines, follower.url)
        (lead_status, lead_lines), (status, lines) = leading.result(), following.result()
    content = [(t, json.loads(line[6:])["choices"][0]["delta"]["content"]) for t, line in lines
               if line.startswith("data: {") and '"content"' in line]
    assert lead_status == "MISS" and status == "COALESCED" and scripted.chat_calls == 1
    assert "".join(text for _, text in content) == "".join(pieces)
    assert lines[-1][1] == "data: [DONE]" and lead_lines[-1][1] == "data: [DONE]"  # both whole
    # live: the follower's tokens arrive spread over the generation, not in one burst at its end
    assert content[-1][0] - content[0][0] > 0.4


def test_follower_that_streamed_part_of_a_dead_leaders_answer_fails_retryably(
        scripted, start_proxy, proxy_process, redis_server):
    scripted.script(Script(chunks=[f"w{i} " for i in range(50)], delay=0.1), Script(text="second try"))
    leader_url, leader = proxy_process(scripted.url, redis_server.url, "--cache-lease-ttl", "1")
    follower = start_proxy(scripted.url, cache=redis_server.url, cache_lease_ttl=1.0)
    leader_started(scripted, lambda: _stream_lines(leader_url))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        following = pool.submit(_stream_lines, follower.url)
        time.sleep(0.8)  # the follower has passed on some of the leader's words
        leader.kill()
        status, lines = following.result()
    data = [line[6:] for _, line in lines if line.startswith("data: ")]
    assert any('"content"' in d for d in data)  # it was following live
    assert json.loads(data[-1])["error"]["code"] == "upstream_error" and "[DONE]" not in data
    retry = post(follower.url)  # the retry leads a fresh generation
    assert retry.status_code == 200 and retry.json()["choices"][0]["message"]["content"] == "second try"


def _data(lines) -> list[str]:
    return [line[6:] for _, line in lines if line.startswith("data: ")]


def _text_of(data: list[str]) -> str:
    chunks = [json.loads(d) for d in data if d.startswith("{")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def test_a_flush_under_a_live_follower_loses_nothing(scripted, start_proxy, redis_server):
    """A flush on another Mac mid-generation removes entries, never the relay a follower is
    reading: the follower's answer is whole."""
    words = [f"w{i} " for i in range(30)]
    scripted.script(Script(chunks=words, delay=0.1))
    leader, follower = (start_proxy(scripted.url, cache=redis_server.url) for _ in range(2))
    following = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        leading = pool.submit(_stream_lines, leader.url)
        upstream_reached(scripted)
        result = pool.submit(_stream_lines, follower.url, started=following)
        assert following.wait(10)
        assert httpx.post(follower.url + "/cache/flush", timeout=10).status_code == 200
        (_, lead_lines), (status, lines) = leading.result(), result.result()
    assert _text_of(_data(lead_lines)) == _text_of(_data(lines)) == "".join(words)
    assert status == "COALESCED" and _data(lines)[-1] == "[DONE]"


def test_a_gap_in_the_relay_is_an_error_event_never_a_gapped_answer(start_proxy, scripted, redis_server):
    """A scripted leader on the shared Redis (its lease, its relay, in the proxy's wire format)
    whose second batch never arrives, as when a publish failed or the follower fell behind a
    flush: the follower that passed the first batch on ends with an error, not [DONE]."""
    follower = start_proxy(scripted.url, cache=redis_server.url)
    body = {**CHAT, "stream": True}
    key = follower.state.path.key_of(body, parse_cache_control({}))
    client = redis.Redis.from_url(redis_server.url)

    def relay(seq: int, *items) -> None:
        client.xadd(key + EVENTS_SUFFIX, {"d": encode_items("scripted-leader", seq, items)})
        client.publish(KEY_PREFIX + "notify", key)

    client.set(key + LEASE_SUFFIX, "scripted-leader", px=30_000)
    relay(0, TextDelta("first "))
    following = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        result = pool.submit(_stream_lines, follower.url, started=following)
        assert following.wait(10)
        relay(2, TextDelta("third "), Finish("stop"))  # the batch at 1 is missing
        status, lines = result.result()
    client.close()
    data = _data(lines)
    assert status == "COALESCED" and _text_of(data) == "first "
    assert "[DONE]" not in data and json.loads(data[-1])["error"]["code"] == "upstream_error"
    assert "lost" in json.loads(data[-1])["error"]["message"] and scripted.chat_calls == 0


def test_a_follower_that_missed_the_relay_start_replays_the_whole_entry(scripted, start_proxy, redis_server):
    """The relay's first events gone before the follower read any (flushed before it came):
    nothing was passed on, so it waits for the entry and streams all of it. (A first follower
    on a third proxy makes the leader relay: nobody does without one.)"""
    words = [f"w{i} " for i in range(20)]
    scripted.script(Script(chunks=words, delay=0.1))
    leader, first, follower = (start_proxy(scripted.url, cache=redis_server.url) for _ in range(3))
    client = redis.Redis.from_url(redis_server.url)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        leading = pool.submit(_stream_lines, leader.url)
        upstream_reached(scripted)
        following = threading.Event()
        first_follower = pool.submit(_stream_lines, first.url, started=following)
        assert following.wait(10)  # the relay runs
        relays = client.keys("*:events")
        assert relays and client.delete(*relays) == len(relays)
        client.close()
        status, lines = pool.submit(_stream_lines, follower.url).result()
        leading.result(), first_follower.result()
    data = _data(lines)
    assert status == "COALESCED" and data[-1] == "[DONE]" and _text_of(data) == "".join(words)
    assert scripted.chat_calls == 1


def test_followers_learn_of_a_killed_leader_within_five_seconds(scripted, proxy_process, start_proxy,
                                                                redis_server):
    """Default settings: the leader's heartbeat (its lease, renewed every second) stops when it
    is killed; a follower streaming its answer fails within 5 s, and one that arrives after the
    kill does not wait on it either."""
    scripted.script(Script(chunks=[f"w{i} " for i in range(400)], delay=0.1), Script(text="fresh answer"))
    leader_url, leader = proxy_process(scripted.url, redis_server.url)
    follower, latecomer = (start_proxy(scripted.url, cache=redis_server.url) for _ in range(2))
    leader_started(scripted, lambda: _stream_lines(leader_url))
    following = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        live = pool.submit(_stream_lines, follower.url, started=following)
        assert following.wait(10)
        leader.kill()
        killed = time.monotonic()
        late = pool.submit(_stream_lines, latecomer.url)
        _, lines = live.result()
        live_ended = time.monotonic() - killed
        _, late_lines = late.result()
        late_ended = time.monotonic() - killed
    for data, seconds in ((_data(lines), live_ended), (_data(late_lines), late_ended)):
        assert "[DONE]" not in data and json.loads(data[-1])["error"]["code"] == "upstream_error"
        assert seconds < 5, seconds


def test_a_leader_nobody_follows_writes_no_relay(scripted, start_proxy, redis_server):
    """Relaying costs a Redis write per batch of tokens: without a follower on another proxy
    the leader makes none, while it generates or after (the answer is still stored)."""
    words = [f"w{i} " for i in range(10)]
    scripted.script(Script(chunks=words, delay=0.05))
    leader = start_proxy(scripted.url, cache=redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        leading = pool.submit(_stream_lines, leader.url)
        seen = []
        while not leading.done():
            seen += client.keys("*:events")
            time.sleep(0.02)
        status, lines = leading.result()
    assert status == "MISS" and _text_of(_data(lines)) == "".join(words)
    assert seen == [] and client.keys("*:events") == []
    assert post(leader.url).headers["X-Cache-Status"] == "HIT"
    client.close()
