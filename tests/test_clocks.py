"""The upstream clocks: progress is a token, never a byte. Pure rules, then every route that
talks to the upstream against silent and trickling scripted upstreams."""
from __future__ import annotations

import time

import httpx
import pytest

from proxy.upstream.clocks import Clock, chunk_has_token
from tests.rig.scripted_upstream import Script

FIRST, IDLE, TOTAL = 1.5, 1.5, 4.0
SLACK = 1.5  # each error comes at its clock ± this


def test_clock_phases_and_which_budget_ends_first():
    c = Clock(first_token_timeout=10, idle_timeout=3, total_timeout=12, start=100.0)
    assert c.remaining(101.0) == (9.0, "first_token")
    c.token(105.0)
    assert c.remaining(106.0) == (2.0, "idle")
    c.token(110.0)
    assert c.remaining(110.5) == (1.5, "total")  # 112 comes before 113
    assert "between tokens (idle timeout 3 s)" in c.message("idle")


@pytest.mark.parametrize("chunk,token", [
    ({"choices": [{"delta": {"role": "assistant"}}]}, False),
    ({"choices": [], "usage": {"prompt_tokens": 1}}, False),
    ({"choices": [{"delta": {"content": ""}}]}, False),
    ({"choices": [{"delta": {"content": "x"}}]}, True),
    ({"choices": [{"delta": {"reasoning_content": "hm"}}]}, True),
    ({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{"}}]}}]}, True),
    ({"choices": [{"delta": {}, "finish_reason": "stop"}]}, True),
    ({"choices": [{"text": "legacy"}]}, True),
])
def test_what_counts_as_a_token(chunk, token):
    assert chunk_has_token(chunk) is token


CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ROUTES = {  # name -> (path, body)
    "chat": ("/v1/chat/completions", CHAT),
    "chat stream": ("/v1/chat/completions", {**CHAT, "stream": True}),
    "responses": ("/v1/responses", {"model": "m", "input": "hi"}),
    "messages stream": ("/v1/messages", {"model": "m", "max_tokens": 9, "stream": True,
                                          "messages": [{"role": "user", "content": "hi"}]}),
    "completions": ("/v1/completions", {"model": "m", "prompt": "hi", "stream": True}),
}
# scenario -> (script, the clock that must end it, after how long)
SCENARIOS = {
    "silent": (Script(stall_after=0), "first-token", FIRST),
    "trickle from the start": (Script(trickle=0.1), "first-token", FIRST),
    "trickle after tokens": (Script(chunks=["a", "b"], trickle=0.1, trickle_after=2), "idle", IDLE),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("route", ROUTES)
def test_every_route_errors_at_its_clock_naming_it(scripted, start_proxy, route, scenario):
    script, clock, after = SCENARIOS[scenario]
    if route == "chat" and scenario == "trickle after tokens":
        after = IDLE  # non-stream: the client waits for the whole answer, the idle clock ends it
    scripted.script(script)
    proxy = start_proxy(scripted.url, first_token_timeout=FIRST, idle_timeout=IDLE, total_timeout=TOTAL,
                        cache="none")
    path, body = ROUTES[route]
    started = time.monotonic()
    r = httpx.post(proxy.url + path, json=body, timeout=30)
    took = time.monotonic() - started
    assert abs(took - after) < SLACK, (took, r.status_code, r.text[-300:])
    assert f"{clock} timeout" in r.text, r.text[-300:]


def test_passthrough_counts_bytes_as_progress_so_a_trickle_ends_at_the_total_timeout(scripted, start_proxy):
    scripted.script(Script(trickle=0.1))
    proxy = start_proxy(scripted.url, first_token_timeout=FIRST, idle_timeout=IDLE, total_timeout=TOTAL)
    started = time.monotonic()
    r = httpx.post(proxy.url + "/v1/slow/anything", json={"stream": True}, timeout=30)
    assert abs(time.monotonic() - started - TOTAL) < SLACK
    assert r.status_code == 200 and r.text.rstrip().endswith('"code":"upstream_timeout"}}')
    assert "total timeout" in r.text  # an event stream ends with an error event naming the clock


def test_passthrough_silent_before_its_first_byte_errors_at_the_first_token_clock(scripted, start_proxy):
    scripted.script(Script(hang_before_headers=True))
    proxy = start_proxy(scripted.url, first_token_timeout=FIRST, idle_timeout=IDLE, total_timeout=TOTAL)
    started = time.monotonic()
    r = httpx.post(proxy.url + "/v1/slow/anything", json={"x": 1}, timeout=30)
    assert abs(time.monotonic() - started - FIRST) < SLACK
    assert r.status_code == 504 and "first-token timeout" in r.json()["error"]["message"]
