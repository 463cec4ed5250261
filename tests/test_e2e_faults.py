"""Real faults against the real mlx_lm.server: a client that leaves, a server killed mid-stream."""
from __future__ import annotations

import json
import os
import time

import httpx

# The tiny model's end-of-turn token, pushed away so a generation runs for many seconds.
LONG = {"model": "m", "messages": [{"role": "user", "content": "go on"}], "max_tokens": 20000,
        "logit_bias": {"2": -100}, "stream": True}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def cpu_used_over(pid: int, seconds: float) -> float:
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def test_upstream_stops_generating_when_an_uncacheable_client_leaves(mlx_server_factory, start_proxy):
    server = mlx_server_factory()
    proxy = start_proxy(server.url)
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=LONG,
                      headers={"Cache-Control": "no-store"}, timeout=60) as r:
        before, until = cpu_seconds(server.pid), time.monotonic() + 1.0
        for _line in r.iter_lines():  # read for a second: the server is generating
            if time.monotonic() > until:
                break
        busy = cpu_seconds(server.pid) - before
    time.sleep(0.5)  # the server notices at its next token write
    idle = cpu_used_over(server.pid, 1.0)
    assert busy > 0.3, f"the server was not generating ({busy:.2f} s CPU in 1 s)"
    assert idle < 0.1, f"the server kept generating after the client left ({idle:.2f} s CPU in 1 s)"
    assert proxy.state.pipeline.cancelled == 1


def test_server_killed_mid_stream(mlx_server_factory, start_proxy):
    server = mlx_server_factory()
    proxy = start_proxy(server.url)
    body = {**LONG, "max_tokens": 5000}
    lines = []
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            lines.append(line)
            if len(lines) == 20:
                killed_at = time.monotonic()
                server.kill()  # SIGKILL; the supervisor restarts it
        ended_at = time.monotonic()
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert json.loads(data[-1])["error"]["code"] == "upstream_error"
    assert "[DONE]" not in data
    assert ended_at - killed_at < 3.0  # promptly, not after a timeout
    server.wait_ready()
    retry = httpx.post(proxy.url + "/v1/chat/completions", json={**body, "stream": False, "max_tokens": 5}, timeout=60)
    assert retry.status_code == 200 and retry.headers["X-Cache-Status"] == "MISS"
    again = httpx.post(proxy.url + "/v1/chat/completions", json={**body, "max_tokens": 5000}, timeout=120)
    assert again.headers["X-Cache-Status"] == "MISS"  # the cut stream was never stored
    assert again.text.rstrip().endswith("data: [DONE]")
