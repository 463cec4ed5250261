"""The proxy in front of the scripted upstream: forwarding, streaming, limits, errors."""
from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from proxy.upstream.status import UpstreamStatus
from tests.rig.scripted_upstream import Script

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def sse_data(lines: list[str]) -> list[str]:
    return [line[6:] for line in lines if line.startswith("data: ")]


def test_non_stream_chat_has_openai_shape(scripted, start_proxy):
    scripted.script(Script(text="Hello there."))
    proxy = start_proxy(scripted.url)
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["total_tokens"] == 18
    # the upstream was asked for a stream, with the model pinned and a Content-Length body
    sent = scripted.received[-1]
    assert sent.body["stream"] is True and sent.body["model"] == "default_model"
    assert "Content-Length" in sent.headers and "Transfer-Encoding" not in sent.headers


def test_stream_events_arrive_as_the_upstream_sends_them(scripted, start_proxy):
    pieces = [f"p{i} " for i in range(10)]
    scripted.script(Script(chunks=pieces, delay=0.05))
    proxy = start_proxy(scripted.url)
    arrivals: list[tuple[float, str]] = []
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: ") and '"content"' in line:
                arrivals.append((time.monotonic(), json.loads(line[6:])["choices"][0]["delta"]["content"]))
    assert "".join(t for _, t in arrivals) == "".join(pieces)
    spread = arrivals[-1][0] - arrivals[0][0]
    # 9 gaps of 50 ms upstream: buffering would deliver everything at once
    assert spread > 0.3, f"events arrived together ({spread:.3f}s)"


def test_stream_ends_with_finish_usage_and_done(scripted, start_proxy):
    scripted.script(Script(text="abc"))
    proxy = start_proxy(scripted.url)
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body) as r:
        data = sse_data(list(r.iter_lines()))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}  # never content: "" first
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 11


def test_upstream_keepalive_comments_reach_the_client(scripted, start_proxy):
    scripted.script(Script(text="ok", first_delay=0.5, comments_during_first_delay=0.1))
    proxy = start_proxy(scripted.url)
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
        lines = list(r.iter_lines())
    assert any(line.startswith(": keepalive") for line in lines)


def test_other_paths_are_forwarded_transparently(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    r = httpx.put(proxy.url + "/some/where?x=1&y=%20", content=b"payload", headers={"X-Custom": "yes"})
    assert r.status_code == 200 and r.headers["X-Upstream"] == "scripted"
    echoed = r.json()
    assert echoed["method"] == "PUT" and echoed["path"] == "/some/where?x=1&y=%20"
    assert echoed["body"] == "payload" and echoed["headers"]["X-Custom"] == "yes"


def test_oversized_body_is_413_json(scripted, start_proxy):
    proxy = start_proxy(scripted.url, max_body_bytes=1000)
    r = httpx.post(proxy.url + "/v1/chat/completions",
                   json={**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"
    assert r.headers["x-should-retry"] == "false"
    assert scripted.chat_calls == 0


def test_non_utf8_body_is_400_json(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    r = httpx.post(proxy.url + "/v1/chat/completions", content=b'{"messages": "\xff\xfe"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert scripted.chat_calls == 0


def test_restarting_upstream_gets_503_with_integer_retry_after(scripted, start_proxy):
    status = UpstreamStatus(managed=True)
    status.set("restarting", "mlx_lm.server exited")
    proxy = start_proxy(scripted.url, status=status)
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 503
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "upstream_restarting"
    assert scripted.chat_calls == 0


def test_unreachable_upstream_is_502(start_proxy):
    proxy = start_proxy("http://127.0.0.1:9")  # discard port: nothing listens
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "upstream_unreachable"


def test_concurrency_cap_queues_the_rest(scripted, start_proxy, server_loop):
    scripted.script(Script(text="slow", delay=0.05, chunks=["a", "b", "c"]))
    proxy = start_proxy(scripted.url, max_concurrency=1, cache="none")
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        bodies = [{**CHAT, "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(6)]
        results = list(pool.map(lambda b: httpx.post(proxy.url + "/v1/chat/completions", json=b, timeout=30), bodies))
    assert [r.status_code for r in results] == [200] * 6
    assert scripted.max_active == 1 and scripted.chat_calls == 6


def test_openai_sdk_chat_and_models(scripted, start_proxy):
    scripted.script(Script(text="SDK says hi"))
    proxy = start_proxy(scripted.url, served_model="my-model", model_aliases=("current-model",))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused")
    out = client.chat.completions.create(model="current-model", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "SDK says hi"
    stream = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi2"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "SDK says hi"
    assert [m.id for m in client.models.list()] == ["my-model", "current-model"]


@pytest.mark.parametrize("path", ["/v1/completions", "/completions"])
def test_completions_relay_pins_the_model(scripted, start_proxy, path):
    proxy = start_proxy(scripted.url)
    r = httpx.post(proxy.url + path, json={"model": "gpt-3.5-turbo-instruct", "prompt": "hi"})
    assert r.status_code == 200
    assert scripted.received[-1].path == "/v1/completions"
    assert scripted.received[-1].body["model"] == "default_model"
