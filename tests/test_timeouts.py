"""Timeouts and upstream failures: the right status or error event, in time, never a hang."""
from __future__ import annotations

import concurrent.futures
import json
import socket
import time

import httpx
import pytest

from tests.rig.scripted_upstream import Script

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
URL = "/v1/chat/completions"
TOLERANCE = 1.5  # seconds of slack on a loaded 2-core machine


def timed_post(proxy, body=CHAT):
    t = time.monotonic()
    r = httpx.post(proxy.url + URL, json=body, timeout=60)
    return r, time.monotonic() - t


def timed_stream(proxy, body=CHAT):
    t = time.monotonic()
    with httpx.stream("POST", proxy.url + URL, json={**body, "stream": True}, timeout=60) as r:
        lines = [(time.monotonic() - t, line) for line in r.iter_lines() if line]
        status = r.status_code
    return status, lines, time.monotonic() - t


@pytest.mark.parametrize("script,clock", [
    (Script(hang_before_headers=True), "first_token_timeout"),
    (Script(first_delay=30), "first_token_timeout"),
    (Script(chunks=["a", "b", "c"], stall_after=2), "idle_timeout"),
], ids=["no-headers", "no-first-token", "stall"])
def test_non_stream_timeouts_are_504(scripted, start_proxy, script, clock):
    scripted.script(script)
    proxy = start_proxy(scripted.url, **{clock: 1.0})
    r, took = timed_post(proxy)
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    assert 1.0 <= took < 1.0 + TOLERANCE


def test_total_timeout(scripted, start_proxy):
    scripted.script(Script(chunks=["x"] * 100, delay=0.05))
    proxy = start_proxy(scripted.url, total_timeout=1.0)
    r, took = timed_post(proxy)
    assert r.status_code == 504 and took < 1.0 + TOLERANCE


def test_stream_gets_keepalives_while_waiting_then_an_error_event(scripted, start_proxy):
    scripted.script(Script(first_delay=30))
    proxy = start_proxy(scripted.url, first_token_timeout=2.0, keepalive_interval=0.3)
    status, lines, took = timed_stream(proxy)
    assert status == 200  # the stream began with keep-alives, so the error is an event
    keepalives = [t for t, line in lines if line == ": keep-alive"]
    assert len(keepalives) >= 4 and keepalives[0] < 1.0  # arriving during the wait, not at the end
    last = json.loads(lines[-1][1][6:])
    assert last["error"]["code"] == "upstream_timeout"
    assert all(line != "data: [DONE]" for _, line in lines)
    assert 2.0 <= took < 2.0 + TOLERANCE


def test_stream_timeout_before_any_byte_is_a_real_504(scripted, start_proxy):
    scripted.script(Script(hang_before_headers=True))
    proxy = start_proxy(scripted.url, first_token_timeout=0.5, keepalive_interval=5.0)
    status, lines, _ = timed_stream(proxy)
    assert status == 504


@pytest.mark.parametrize("script,code", [
    (Script(chunks=["a", "b", "c"], stall_after=1), "upstream_timeout"),
    (Script(chunks=["a", "b", "c"], close_after=2, delay=0.2), "upstream_error"),
    (Script(chunks=["a", "b"], send_done=False), "upstream_error"),
], ids=["stall", "close", "no-done"])
def test_mid_stream_failures_become_an_error_event(scripted, start_proxy, script, code):
    scripted.script(script)
    proxy = start_proxy(scripted.url, idle_timeout=1.0)
    status, lines, took = timed_stream(proxy)
    assert status == 200
    data = [line[6:] for _, line in lines if line.startswith("data: ")]
    assert json.loads(data[-1])["error"]["code"] == code
    assert "[DONE]" not in data
    assert took < 1.0 + TOLERANCE


@pytest.mark.parametrize("status,body,expect_status,expect_code", [
    (500, b'{"error": "boom"}', 502, "upstream_error"),
    (404, b'{"error": "Template error: bad message"}', 400, "upstream_rejected"),
    (400, b"raw text complaint", 400, "upstream_rejected"),
    (200, b"<html>not json</html>", 502, "upstream_bad_response"),
    (503, b"", 503, "upstream_unavailable"),
])
def test_upstream_error_answers_are_mapped(scripted, start_proxy, status, body, expect_status, expect_code):
    scripted.script(Script(status=status, raw_body=body))
    proxy = start_proxy(scripted.url)
    r, _ = timed_post(proxy)
    assert r.status_code == expect_status
    err = r.json()["error"]
    assert err["code"] == expect_code and set(err) == {"message", "type", "param", "code"}
    if expect_status in (400, 413):
        assert r.headers["x-should-retry"] == "false"
    if expect_status == 503:
        assert int(r.headers["Retry-After"]) > 0


def test_queue_serves_interactive_before_background_and_refuses_beyond_its_bound(scripted, start_proxy):
    # the first request holds the only slot long enough for all the others to queue
    scripted.script(Script(chunks=["x"], first_delay=1.5), Script(chunks=["x"]))
    proxy = start_proxy(scripted.url, max_concurrency=1, max_queue=20, cache="none")

    def ask(i):
        content = "Warmup" if i % 2 else f"interactive {i}"
        return httpx.post(proxy.url + URL, json={**CHAT, "messages": [{"role": "user", "content": content}],
                                                 "seed": i}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(21) as pool:
        first = pool.submit(ask, 0)
        time.sleep(0.1)
        rest = [pool.submit(ask, i) for i in range(1, 21)]
        results = [first.result()] + [f.result() for f in rest]
    assert all(r.status_code == 200 for r in results)
    served = [r.body["messages"][-1]["content"] for r in scripted.received]
    first_bg = next(i for i, c in enumerate(served) if c == "Warmup")
    assert all(c != "Warmup" for c in served[:first_bg]) and all(c == "Warmup" for c in served[first_bg:])
    assert first_bg == 11  # request 0, the 10 queued interactive ones, then the 10 background ones

    scripted.script(Script(chunks=["x"], first_delay=0.5))
    proxy2 = start_proxy(scripted.url, max_concurrency=1, max_queue=2, cache="none")
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda i: httpx.post(proxy2.url + URL, json={**CHAT, "seed": i}, timeout=60),
                                range(6)))
    refused = [r for r in results if r.status_code == 503]
    assert len(refused) >= 1 and all(int(r.headers["Retry-After"]) > 0 for r in refused)
    assert all(r.json()["error"]["code"] == "queue_full" for r in refused)


def test_slow_loris_client_is_cut_off(scripted, start_proxy):
    proxy = start_proxy(scripted.url, client_body_timeout=1.0)
    with socket.create_connection(("127.0.0.1", proxy.server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        sock.settimeout(1.0 + TOLERANCE + 1)
        t = time.monotonic()
        answer = sock.recv(4096)
        took = time.monotonic() - t
    assert answer.startswith(b"HTTP/1.1 408") and took < 1.0 + TOLERANCE
    assert proxy.server.in_flight == 0
