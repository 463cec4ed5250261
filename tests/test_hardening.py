"""The smaller holes a black-box probe found (issue 14, point 8), each against the real proxy:
encodings on the way through, a failing Redis that still serves, a client-chosen TTL, what
logs may say, and the headers of error answers. (The password in --print-config: see
test_config_cli; the child's environment: test_launcher; the parser's errors: test_connections.)"""
from __future__ import annotations

import gzip
import logging

import httpx
import orjson
import pytest
import redis

from proxy.cache.breaker import BreakerState
from proxy.cache.keys import KEY_PREFIX
from proxy.cache.store import ResponseCache, describe_backend_error
from proxy.completion import Completion
from proxy.config import Settings

from .rig.proxy_process import raw_request
from .rig.scripted_upstream import Script

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
URL = "/v1/chat/completions"


def test_passthrough_sends_the_body_as_it_is_now_and_asks_for_no_encoding(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    body = b'{"input": "embed me"}'
    r = httpx.post(proxy.url + "/v1/embeddings", content=gzip.compress(body),
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200 and r.headers["X-Upstream"] == "scripted"
    received = {k.lower(): v for k, v in r.json()["headers"].items()}
    assert r.json()["body"] == body.decode()  # aiohttp decompressed it: it goes up plain...
    assert "content-encoding" not in received  # ...and is not labelled gzip
    plain = raw_request(proxy.server.port, b"GET /v1/other HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    echoed = [r for r in scripted.received if r.path == "/v1/other"][0].headers
    assert plain.startswith(b"HTTP/1.1 200") and "accept-encoding" not in {k.lower() for k in echoed}


def _corrupt(kind: str) -> bytes:
    good = bytearray(gzip.compress(orjson.dumps({**CHAT, "messages": [{"role": "user", "content": "hi " * 200}]})))
    if kind == "not-gzip":
        return b"plain text, labelled gzip"
    if kind == "flipped":
        good[len(good) // 2] ^= 0xFF
    else:  # the trailer's checksum
        good[-8:-4] = b"\0\0\0\0"
    return bytes(good)


@pytest.mark.parametrize("path", [URL, "/v1/messages", "/v1/embeddings"])
@pytest.mark.parametrize("kind", ["not-gzip", "flipped", "bad-checksum"])
def test_a_corrupt_gzip_body_is_a_400(scripted, start_proxy, path, kind):
    proxy = start_proxy(scripted.url)
    with httpx.Client() as client:
        r = client.post(proxy.url + path, content=_corrupt(kind), headers={"Content-Encoding": "gzip",
                                                                           "Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.headers["Connection"] == "close"  # what is left of the body cannot be skipped
        assert "Content-Encoding: gzip" in r.json()["error"]["message"] and not scripted.received
        assert client.get(proxy.url + "/health/live").status_code == 200  # a new connection: fine


def test_a_key_header_that_is_not_utf8_is_a_wrong_key(scripted, start_proxy):
    proxy = start_proxy(scripted.url, api_keys=("sk-" + "a" * 40,))
    answer = raw_request(proxy.server.port, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Authorization: Bearer sk-\xff\xfe\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401") and orjson.loads(body)["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("refusal", ["read-only", "full"])
def test_a_redis_that_refuses_writes_is_reachable_and_requests_are_served(scripted, start_proxy, redis_server,
                                                                          refusal):
    proxy = start_proxy(scripted.url, cache=redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    if refusal == "read-only":
        client.replicaof("127.0.0.1", "1")  # a replica of nothing: read-only, and it says so
    else:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")  # every write: OOM
    try:
        ready = httpx.get(proxy.url + "/health/ready")
        assert ready.status_code == 200 and ready.json()["cache"] == "reachable", ready.json()
        r = httpx.post(proxy.url + URL, json=CHAT)
        assert r.status_code == 200 and r.headers["X-Cache-Status"] == "MISS"
        assert httpx.get(proxy.url + "/cache/stats").status_code == 200
    finally:
        client.replicaof("NO", "ONE")
        client.config_set("maxmemory", "0")
        client.close()


def test_a_client_ttl_never_outlives_the_operators(scripted, start_proxy, redis_server):
    proxy = start_proxy(scripted.url, cache=redis_server.url, cache_ttl=60)
    three_thousand_years = str(3000 * 365 * 86400)
    long = httpx.post(proxy.url + URL, json=CHAT, headers={"X-Cache-TTL": three_thousand_years})
    short = httpx.post(proxy.url + URL, json={**CHAT, "seed": 1}, headers={"X-Cache-TTL": "5"})
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert 0 < client.ttl(long.headers["X-Cache-Key"]) <= 60
        assert 0 < client.ttl(short.headers["X-Cache-Key"]) <= 5  # shorter is the client's to ask
    finally:
        client.close()


async def test_breaker_lines_name_no_key_and_no_text(redis_server, open_cache, caplog):
    """A Redis out of memory refuses every write; the breaker's line says so, and neither the
    key nor the answer's text that redis-py's error message quotes."""
    cache = await open_cache(ResponseCache.from_settings(Settings(cache=redis_server.url, cache_near_ttl=0)))
    client = redis.Redis.from_url(redis_server.url)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    keys = [KEY_PREFIX + f"{n:02x}" * 32 for n in range(cache.breaker.failure_threshold)]
    try:
        with caplog.at_level(logging.DEBUG, logger="proxy.cache"):
            for key in keys:
                assert await cache.store(key, Completion(content="a secret answer", finish_reason="stop")) is False
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    assert cache.breaker.state is BreakerState.OPEN
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("proxy.cache")]
    assert any("OutOfMemoryError" in line for line in lines), lines  # what went wrong is still said
    assert not any(key in line or key.removeprefix(KEY_PREFIX) in line for line in lines for key in keys)
    assert not any("secret answer" in line for line in lines)


def test_a_backend_error_is_described_by_class_and_code_only(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "1")
        pipe = client.pipeline()
        pipe.set("mlx-proxy:some-key", "the text of an answer")
        with pytest.raises(redis.ResponseError) as raised:
            pipe.execute()
    finally:
        client.config_set("maxmemory", "0")
        client.close()
    assert "some-key" in str(raised.value)  # what redis-py says...
    assert describe_backend_error(raised.value) == "OutOfMemoryError"  # ...and what we log
    assert describe_backend_error(redis.ResponseError(
        "Command # 1 (SET k v) of pipeline caused error: READONLY You can't write")) == "ResponseError READONLY"
    assert describe_backend_error(TimeoutError("x")) == "TimeoutError"


def test_error_answers_say_what_the_cache_did(scripted, start_proxy):
    scripted.script(Script(status=500))
    proxy = start_proxy(scripted.url)
    bad = httpx.post(proxy.url + URL, content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.headers["X-Cache-Status"] == "BYPASS"  # never looked
    failed = httpx.post(proxy.url + URL, json=CHAT)
    assert failed.status_code >= 500 and failed.headers["X-Cache-Status"] == "MISS"  # looked, generated, failed
    no_store = httpx.post(proxy.url + URL, json=CHAT, headers={"Cache-Control": "no-store"})
    assert no_store.headers["X-Cache-Status"] == "MISS"
    missing = httpx.get(proxy.url + "/v1/nothing-here-either")
    assert missing.headers["X-Cache-Status"] == "BYPASS"
