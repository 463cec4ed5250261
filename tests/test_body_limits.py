"""What a big JSON body inside the 64 MiB limit costs the proxy process (issue 14, point 4):
refused before it is built when its structure is too big or too deep, parsed off the event
loop when it is merely large; liveness never waits on it. Measured on the proxy as its own
process (peak RSS from /proc), against the scripted upstream."""
from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass

import orjson
import pytest

from .rig.proxy_process import LIVE, ProxyProcess, raw_request

MB = 1_000_000


def nested_body(size: int = 60 * MB, depth: int = 500) -> bytes:
    """Blocks of `depth`-deep arrays, side by side, in an unknown field of a chat request."""
    block = b"[" * depth + b"1" + b"]" * depth
    blocks = b",".join([block] * (size // (len(block) + 1)))
    return b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x_junk":[' + blocks + b"]}"


def flat_body(size: int = 60 * MB) -> bytes:
    """Millions of one-element arrays: shallow, but each a Python list once parsed."""
    items = b",".join([b"[1]"] * (size // 4))
    return b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x_junk":[' + items + b"]}"


def text_body(size: int = 15 * MB) -> bytes:
    """A legitimate big prompt: many turns of plain text (a long agent session, pasted files)."""
    turn = "a line of a long file that the user pasted into the conversation\n" * 40
    n = size // (len(turn) + 40)
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i} {turn}"} for i in range(n)]
    messages[-1]["role"] = "user"
    return orjson.dumps({"model": "m", "messages": messages, "max_tokens": 8})


def warm_up(proxy: ProxyProcess) -> None:
    """One small request of each kind, so start-up work (learning the upstream, loading the
    tokenizer) is not measured as the big body's."""
    small = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
    for path in ("/v1/chat/completions", "/v1/messages/count_tokens"):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=120)
        conn.request("POST", path, small, {"Content-Type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()


@dataclass
class Outcome:
    status: int
    body: dict
    seconds: float
    rss_growth_mb: float  # peak RSS during the request minus RSS before it
    worst_liveness: float  # slowest /health/live answer while it ran


def post(proxy: ProxyProcess, path: str, body: bytes) -> Outcome:
    before = proxy.memory_kib("VmRSS")
    probe = _LivenessProbe(proxy.port)
    probe.start()
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=120)
    conn.request("POST", path, body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = resp.read()
    seconds = time.monotonic() - started
    probe.stop()
    conn.close()
    growth = (proxy.memory_kib("VmHWM") - before) / 1024
    return Outcome(resp.status, orjson.loads(answer), seconds, growth, probe.worst)


class _LivenessProbe(threading.Thread):
    """Asks /health/live back to back on fresh connections; keeps the slowest answer."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.worst = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            started = time.monotonic()
            try:
                raw_request(self.port, LIVE, timeout=10)
            except OSError:
                pass
            self.worst = max(self.worst, time.monotonic() - started)
            self._done.wait(0.02)

    def stop(self) -> None:
        self._done.set()
        self.join(15)


@pytest.fixture
def proxy_process(tmp_path, scripted, tiny_model_path):
    proxy = ProxyProcess(tmp_path / "proxy.log", "--upstream", scripted.url, "--served-model", "scripted-model",
                         "--tokenizer-path", tiny_model_path)
    warm_up(proxy)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("make", [nested_body, flat_body], ids=["nested-500-deep", "flat-small-arrays"])
def test_a_60mb_body_of_nested_structure_is_refused_cheaply(proxy_process, scripted, make):
    outcome = post(proxy_process, "/v1/chat/completions", make())
    assert outcome.status == 413 and outcome.body["error"]["code"] == "request_too_large"
    assert "JSON" in outcome.body["error"]["message"]
    assert outcome.seconds < 2.0 and outcome.rss_growth_mb < 500 and outcome.worst_liveness < 0.25, outcome
    assert scripted.chat_calls == 1  # the warm-up's


def test_a_deeply_nested_small_body_is_refused_before_it_is_built(proxy_process, scripted):
    deep = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"x":' + b"[" * 300 + b"]" * 300 + b"}"
    outcome = post(proxy_process, "/v1/chat/completions", deep)
    assert outcome.status == 400 and outcome.body["error"]["code"] == "invalid_json"
    assert "deep" in outcome.body["error"]["message"]
    assert scripted.chat_calls == 1  # the warm-up's


def test_a_15mb_prompt_is_served_without_blocking_liveness(proxy_process, scripted):
    outcome = post(proxy_process, "/v1/chat/completions", text_body())
    assert outcome.status == 200, outcome.body
    assert outcome.worst_liveness < 0.25 and outcome.rss_growth_mb < 500, outcome
    assert scripted.chat_calls == 2


def test_count_tokens_on_a_10mb_body_stays_small(proxy_process):
    body = orjson.loads(text_body(9_600_000))
    anthropic = orjson.dumps({"model": "m", "messages": body["messages"]})
    outcome = post(proxy_process, "/v1/messages/count_tokens", anthropic)
    assert outcome.status == 200 and outcome.body["input_tokens"] > 1_000_000
    assert outcome.rss_growth_mb < 500 and outcome.worst_liveness < 0.25, outcome
