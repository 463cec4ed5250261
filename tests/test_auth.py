"""API keys: 401s with an error body, both header forms, open probes, namespaces, start-up refusal."""
from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from proxy.server.auth import AuthConfigError, check_exposure, match_key, parse_api_key, presented_key
from tests.rig.scripted_upstream import Script

KEY = "k-0123456789abcdef"
OTHER = "k-fedcba9876543210"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "secret question"}]}
URL = "/v1/chat/completions"


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(scripted, start_proxy):
    scripted.script(Script(text="answer"))
    return start_proxy(scripted.url, api_keys=(KEY, f"{OTHER}:teamb"))


def test_no_key_is_401_with_an_openai_error_body(keyed, scripted):
    r = httpx.post(keyed.url + URL, json=CHAT)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "unauthorized" and err["type"] == "authentication_error"
    assert "missing API key" in err["message"]
    assert r.headers["WWW-Authenticate"] == "Bearer" and r.headers["X-Request-Id"]
    assert scripted.chat_calls == 0


def test_wrong_key_is_401_and_right_key_is_200(keyed):
    wrong = httpx.post(keyed.url + URL, json=CHAT, headers=bearer("k-not-the-right-key!"))
    assert wrong.status_code == 401 and "invalid API key" in wrong.json()["error"]["message"]
    right = httpx.post(keyed.url + URL, json=CHAT, headers=bearer(KEY))
    assert right.status_code == 200 and right.json()["choices"][0]["message"]["content"] == "answer"
    assert httpx.post(keyed.url + URL, json=CHAT, headers={"x-api-key": KEY}).status_code == 200


def test_messages_route_answers_401_in_anthropic_shape(keyed):
    r = httpx.post(keyed.url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": CHAT["messages"]})
    assert r.status_code == 401
    assert r.json() == {"type": "error", "error": {"type": "authentication_error", "message": r.json()["error"]["message"]}}


@pytest.mark.parametrize("method, path", [("GET", "/health"), ("GET", "/health/ready"), ("GET", "/metrics"),
                                          ("GET", "/cache/stats"), ("POST", "/cache/flush"),
                                          ("DELETE", "/cache/mlxproxy:v1:x"), ("GET", "/v1/models"),
                                          ("GET", "/anything/upstream")])
def test_every_other_route_needs_the_key(keyed, method, path):
    assert httpx.request(method, keyed.url + path).status_code == 401
    assert httpx.request(method, keyed.url + path, headers=bearer(KEY)).status_code != 401


def test_liveness_and_root_probes_stay_open(keyed):
    assert httpx.get(keyed.url + "/health/live").status_code == 200
    assert httpx.get(keyed.url + "/").status_code == 200
    assert httpx.head(keyed.url + "/").status_code == 200


def test_a_namespaced_key_gets_its_own_cache_entries(keyed):
    plain = httpx.post(keyed.url + URL, json=CHAT, headers=bearer(KEY))
    team = httpx.post(keyed.url + URL, json=CHAT, headers=bearer(OTHER))
    assert plain.headers["X-Cache-Status"] == "MISS" and team.headers["X-Cache-Status"] == "MISS"
    assert team.headers["X-Cache-Key"].startswith("mlxproxy:v1:teamb:")
    # the tenant cannot step out of its namespace by naming another one
    nested = httpx.post(keyed.url + URL, json=CHAT, headers={**bearer(OTHER), "X-Cache-Namespace": "proj"})
    assert nested.headers["X-Cache-Key"].startswith("mlxproxy:v1:teamb.proj:")
    assert httpx.post(keyed.url + URL, json=CHAT, headers={**bearer(OTHER), "X-Cache-Namespace": "x"}
                      ).headers["X-Cache-Key"].startswith("mlxproxy:v1:teamb.x:")
    again = httpx.post(keyed.url + URL, json=CHAT, headers=bearer(OTHER))
    assert again.headers["X-Cache-Status"] == "HIT"


def test_a_namespaced_key_cannot_administer_the_cache(keyed):
    for method, path in (("POST", "/cache/flush"), ("GET", "/cache/stats"), ("DELETE", "/cache/mlxproxy:v1:x")):
        r = httpx.request(method, keyed.url + path, headers=bearer(OTHER))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert httpx.post(keyed.url + "/cache/flush", headers=bearer(KEY)).status_code == 200


def test_key_parsing_and_matching():
    assert parse_api_key(f"{KEY}:team-1") == parse_api_key(f"{KEY}:team-1")
    assert parse_api_key(f"{KEY}:team-1").namespace == "team-1"
    assert parse_api_key(KEY).namespace == "" and parse_api_key(KEY).secret == KEY.encode()
    assert KEY not in repr(parse_api_key(f"{KEY}:team"))
    with pytest.raises(AuthConfigError, match="at least"):
        parse_api_key("short")
    with pytest.raises(AuthConfigError, match="namespace"):
        parse_api_key(f"{KEY}:a.b")  # '.' separates a key's namespace from a client's
    keys = (parse_api_key(KEY), parse_api_key(f"{OTHER}:b"))
    assert match_key(OTHER, keys).namespace == "b"
    assert match_key(KEY + "x", keys) is None and match_key(None, keys) is None
    assert presented_key({"Authorization": "Bearer  abc "}) == "abc"
    assert presented_key({"Authorization": "Basic abc", "x-api-key": "def"}) == "def"
    assert presented_key({}) is None


@pytest.mark.parametrize("host, keys, insecure, refused", [
    ("127.0.0.1", (), False, False), ("::1", (), False, False), ("localhost", (), False, False),
    ("0.0.0.0", (), False, True), ("192.168.1.5", (), False, True), ("mac.local", (), False, True),
    ("0.0.0.0", (KEY,), False, False), ("0.0.0.0", (), True, False),
])
def test_exposure_rules(host, keys, insecure, refused):
    if refused:
        with pytest.raises(AuthConfigError, match="refusing to listen"):
            check_exposure(host, keys, insecure)
    else:
        check_exposure(host, keys, insecure)


def run_proxy(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60,
                          env=env)


def test_start_up_refused_on_all_interfaces_without_keys():
    r = run_proxy("--host", "0.0.0.0", "--port", "1")
    assert r.returncode != 0
    assert "refusing to listen on '0.0.0.0' without an API key" in r.stderr
    assert "--api-key" in r.stderr and "--insecure-no-auth" in r.stderr


def test_keys_from_flags_or_the_explicit_opt_out_allow_start_up():
    assert run_proxy("--host", "0.0.0.0", "--api-key", KEY, "--print-config").returncode == 0
    assert run_proxy("--host", "0.0.0.0", "--insecure-no-auth", "--print-config").returncode == 0


def test_the_proxy_key_never_reaches_the_upstream(keyed, scripted):
    httpx.post(keyed.url + URL, json=CHAT, headers=bearer(KEY))
    httpx.get(keyed.url + "/some/upstream/path", headers={"x-api-key": KEY})
    assert len(scripted.received) == 2
    for received in scripted.received:
        names = {name.lower() for name in received.headers}
        assert "authorization" not in names and "x-api-key" not in names
        assert KEY not in str(received.headers)


def test_oversized_headers_and_bodies_are_refused_before_any_handler(scripted, start_proxy):
    proxy = start_proxy(scripted.url, max_body_bytes=1024)
    # aiohttp's parser limits (documented in the README): 8190 bytes a header line, 128 headers
    assert httpx.get(proxy.url + "/v1/models", headers={"X-Big": "x" * 9000}).status_code == 400
    many = {f"X-H{i}": "1" for i in range(130)}
    assert httpx.get(proxy.url + "/v1/models", headers=many).status_code == 400
    big = httpx.post(proxy.url + URL, json={**CHAT, "pad": "x" * 2000})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert scripted.chat_calls == 0
