"""What a request must look like before any route sees it (proxy/server/guard.py): canonical paths on
every route; on a loopback proxy without keys, nothing a web page of another site can send."""
from __future__ import annotations

import socket

import httpx
import pytest

from proxy.server.guard import cross_site_problem, path_problem

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
DOT_PATHS = ["/v1/./chat/completions", "/x/../v1/chat/completions", "/x/%2e%2e/v1/chat/completions",
             "/x/%2E%2e/v1/chat/completions", "/v1//chat/completions", "/v1/chat%2fcompletions",
             "/v1/../cache/flush", "/v1/.%2e/cache/flush", "/v1\\chat/completions", "/./health"]


@pytest.mark.parametrize("path", DOT_PATHS)
def test_non_canonical_paths_are_refused(path):
    assert path_problem(path) is not None


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages?beta=true", "/", "/cache/abc.def",
                                  "/v1/models", "/files/a..b/c"])
def test_canonical_paths_pass(path):
    assert path_problem(path) is None


def raw_request(port: int, request: bytes) -> bytes:
    """Bytes on the wire, untouched by a client library that would normalize the path."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        sock.settimeout(10)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("path", DOT_PATHS)
def test_dot_segment_paths_never_reach_the_upstream(scripted, start_proxy, path):
    proxy = start_proxy(scripted.url)
    body = b'{"model": "/some/folder", "messages": [{"role": "user", "content": "hi"}]}'
    answer = raw_request(proxy.server.port, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Type: application/json\r\nConnection: close\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"code":"invalid_request"' in answer
    assert scripted.received == []


@pytest.mark.parametrize("headers,code", [
    ({"Host": "evil.example:8081"}, 403),                                  # DNS rebinding
    ({"Origin": "https://evil.example"}, 403),                             # a page of another site
    ({"Origin": "null"}, 403),                                             # a sandboxed page, a file:// page
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Content-Type": "text/plain"}, 415),                                 # a "simple" request: no preflight
    ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
])
def test_a_keyless_proxy_refuses_what_a_web_page_can_send(scripted, start_proxy, headers, code):
    proxy = start_proxy(scripted.url)
    key = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT).headers["X-Cache-Key"]
    r = httpx.post(proxy.url + "/cache/flush", headers=headers, content=b"{}")
    assert r.status_code == code and r.json()["error"]["message"]
    assert httpx.get(proxy.url + "/cache/stats").json()["cached_items"] == 1  # nothing flushed
    assert httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, headers={"Origin": "https://evil.example"}
                      ).status_code == 403
    assert key


def test_loopback_origins_and_plain_clients_pass(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    for headers in ({}, {"Origin": "http://localhost:3000"}, {"Host": "[::1]:8081"}, {"Host": "localhost"}):
        assert httpx.post(proxy.url + "/v1/chat/completions", json=CHAT, headers=headers).status_code == 200, headers
    assert cross_site_problem({"Host": "127.0.0.1:8081", "Content-Type": "application/json; charset=utf-8"}) is None


def test_with_keys_the_key_is_the_rule_not_the_origin(scripted, start_proxy):
    key = "k" * 24
    proxy = start_proxy(scripted.url, api_keys=(key,))
    r = httpx.post(proxy.url + "/v1/chat/completions", json=CHAT,
                   headers={"Authorization": f"Bearer {key}", "Origin": "https://team.example", "Host": "mac.local"})
    assert r.status_code == 200
