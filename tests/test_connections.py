"""The listening socket's limits: a header clock, a connection cap below the open-file limit,
rate-limited low-level logs, and JSON for what the HTTP parser rejects (issue 14, point 3)."""
from __future__ import annotations

import asyncio
import logging
import socket
import time

import orjson

from launcher.cli import free_port
from proxy.server.logs import RepeatFilter

from .rig.proxy_process import ProxyProcess, raw_request
from .rig.scripted_upstream import Script


def _closed_within(s: socket.socket, seconds: float) -> bool:
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


LIVE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def test_a_connection_that_never_finishes_its_headers_is_closed(start_proxy, scripted):
    proxy = start_proxy(scripted.url, client_header_timeout=0.3)
    silent = socket.create_connection(("127.0.0.1", proxy.server.port))
    partial = socket.create_connection(("127.0.0.1", proxy.server.port))
    partial.sendall(LIVE)  # no blank line: the headers never end
    assert _closed_within(silent, 3.0) and _closed_within(partial, 3.0)
    silent.close(), partial.close()


def test_kept_alive_connections_and_long_requests_outlive_the_header_clock(start_proxy, scripted):
    scripted.scripts = [Script(text="slow answer", first_delay=0.8)]  # longer than the clock
    proxy = start_proxy(scripted.url, client_header_timeout=0.3)
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with socket.create_connection(("127.0.0.1", proxy.server.port), timeout=5) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        first = _read_response(s)
        assert first.startswith(b"HTTP/1.1 200") and b"slow answer" in first
        time.sleep(0.5)  # idle between requests: aiohttp's keepalive, not the header clock
        s.sendall(LIVE + b"\r\n")
        assert _read_response(s).startswith(b"HTTP/1.1 200")


def _read_response(s: socket.socket) -> bytes:
    """One response with a Content-Length body from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += s.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_at_the_cap_the_longest_idle_connection_makes_room(start_proxy, scripted):
    proxy = start_proxy(scripted.url, max_connections=8)
    stalled = [socket.create_connection(("127.0.0.1", proxy.server.port)) for _ in range(20)]
    for s in stalled:
        s.sendall(b"GET /health/live HTTP/1.1\r\n")
    answer = raw_request(proxy.server.port, LIVE + b"Connection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200")
    guard = proxy.server.guard
    assert len(guard.open) <= 8 and guard.evicted >= 13
    assert _closed_within(stalled[0], 2.0)  # the oldest went first
    for s in stalled:
        s.close()


def test_what_the_http_parser_rejects_gets_a_json_error(start_proxy, scripted):
    proxy = start_proxy(scripted.url)
    answer = raw_request(proxy.server.port, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400" and b"application/json" in head
    error = orjson.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_request" and error["message"]


def test_repeated_low_level_lines_are_logged_once_per_interval():
    records = []
    logger = logging.getLogger("test.repeat")
    logger.propagate = False
    logger.addHandler(type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r)})())
    logger.addFilter(RepeatFilter(interval=60))
    for fd in range(100):  # asyncio puts the socket's details after the first line
        logger.error("socket.accept() out of system resource\nsocket: <fd=%d>" % fd)
    logger.error("another kind")
    assert [r.getMessage().partition("\n")[0] for r in records] == [
        "socket.accept() out of system resource", "another kind"]


def test_stalling_sockets_under_a_small_file_limit_leave_liveness_answering(tmp_path):
    """300 connections that never finish their headers against a proxy limited to 256 open
    files: liveness answers within 100 ms, the log stays small."""
    proxy = ProxyProcess(tmp_path / "proxy.log", "--upstream", f"http://127.0.0.1:{free_port()}", nofile=256)
    try:
        worst, answered = asyncio.run(_stall_and_probe(proxy.port, sockets=300, hold=5.0))
        assert answered == 5 and worst < 0.1, (worst, answered)
        assert proxy.proc.poll() is None
    finally:
        proxy.stop()
    assert proxy.log.stat().st_size < 1_000_000, proxy.log.stat().st_size


async def _stall_and_probe(port: int, sockets: int, hold: float) -> tuple[float, int]:
    """Open `sockets` connections sending half a request line each, then probe liveness five
    times over `hold` seconds: the slowest answer and how many answered."""
    writers = []
    for _ in range(sockets):
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
        except (OSError, TimeoutError):
            continue  # refused at the cap is fine: what matters is that liveness answers
        w.write(b"GET /health/live HTT")
        writers.append(w)
    worst, answered = 0.0, 0
    for _ in range(5):
        await asyncio.sleep(hold / 5)
        started = time.monotonic()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
            w.write(LIVE + b"Connection: close\r\n\r\n")
            reply = await asyncio.wait_for(r.read(), 1)
            w.close()
        except (OSError, TimeoutError):
            worst = max(worst, 1.0)
            continue
        worst = max(worst, time.monotonic() - started)
        answered += reply.startswith(b"HTTP/1.1 200")
    for w in writers:
        w.close()
    return worst, answered
