"""Request logs: one record per request, request ids, JSON lines, no prompt text unless asked."""
from __future__ import annotations

import io
import json
import logging
from dataclasses import replace

import httpx
import pytest

from proxy.config import Settings
from proxy.server.logs import RequestRecord, configure_logging, format_access_line, request_id_for
from tests.rig.scripted_upstream import Script

PROMPT = "my very private prompt text"
CHAT = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
URL = "/v1/chat/completions"


@pytest.fixture
def access_lines():
    """Access records as logged (the LogRecord's structured fields)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("mlx_proxy.access")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)


def test_one_record_per_request_with_route_status_cache_tokens_and_id(scripted, start_proxy, access_lines):
    scripted.script(Script(text="fine", usage={"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}))
    proxy = start_proxy(scripted.url)
    first = httpx.post(proxy.url + URL, json=CHAT, headers={"X-Request-Id": "client-id-1"})
    second = httpx.post(proxy.url + URL, json={**CHAT, "stream": True})
    httpx.delete(proxy.url + "/cache/mlxproxy:v1:nothing")
    assert first.headers["X-Request-Id"] == "client-id-1"
    fields = [r.fields for r in access_lines]
    assert len(fields) == 3
    assert fields[0] | {"latency_ms": 0} == {
        "request_id": "client-id-1", "method": "POST", "route": "/v1/chat/completions", "status": 200,
        "cache": "MISS", "latency_ms": 0, "prompt_tokens": 5, "completion_tokens": 3, "error": None}
    # the stream (a hit replayed) got an id of ours in its headers and in its record
    assert fields[1]["request_id"] == second.headers["X-Request-Id"] and len(fields[1]["request_id"]) == 16
    assert fields[1]["cache"] == "HIT" and fields[1]["prompt_tokens"] == 5
    assert fields[2]["route"] == "/cache/{key}" and fields[2]["status"] == 404 and fields[2]["prompt_tokens"] is None
    assert fields[2]["error"] == "not_found"
    text = "\n".join(r.getMessage() for r in access_lines)
    assert PROMPT not in text and "mlxproxy:v1:" not in text
    assert "POST /v1/chat/completions 200 cache=MISS" in access_lines[0].getMessage()
    assert "tokens=5+3 id=client-id-1" in access_lines[0].getMessage()


def test_errors_and_streams_carry_the_request_id(scripted, start_proxy):
    scripted.script(Script(status=500))
    proxy = start_proxy(scripted.url)
    failed = httpx.post(proxy.url + URL, json=CHAT, headers={"X-Request-Id": "err-7"})
    assert failed.status_code == 502 and failed.headers["X-Request-Id"] == "err-7"
    scripted.script(Script(text="streamed"))
    with httpx.stream("POST", proxy.url + URL, json={**CHAT, "stream": True}, headers={"X-Request-Id": "s-1"}) as r:
        assert r.headers["X-Request-Id"] == "s-1"
        r.read()


def test_a_bad_client_request_id_is_replaced():
    assert request_id_for("abc-123") == "abc-123"
    for bad in ("", None, "x" * 129, "line\nbreak", 'quote"d', "spa ce"):
        made = request_id_for(bad)
        assert made != bad and len(made) == 16


def test_log_bodies_adds_the_forwarded_body_and_key(scripted, start_proxy, access_lines):
    proxy = start_proxy(scripted.url, log_bodies=True)
    r = httpx.post(proxy.url + URL, json=CHAT)
    fields = access_lines[-1].fields
    assert fields["cache_key"] == r.headers["X-Cache-Key"]
    assert fields["body"]["messages"][-1]["content"] == PROMPT
    assert PROMPT in access_lines[-1].getMessage()


def test_json_lines_are_valid_json_whatever_the_message():
    stream = io.StringIO()
    configure_logging(replace(Settings(), log_format="json"), stream)
    try:
        log = logging.getLogger("mlx_proxy.test")
        log.warning('a "quoted" message\nwith a newline and \\ backslash')
        record = RequestRecord("id1", "POST", "/v1/chat/completions", 0.0, status=200, cache_status="HIT",
                               seconds=0.0123, prompt_tokens=1, completion_tokens=2)
        logging.getLogger("mlx_proxy.access").info(format_access_line(record, False),
                                                   extra={"fields": record.fields(False)})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        logging.getLogger().handlers[:] = []
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    parsed = [json.loads(line) for line in lines]
    assert parsed[0]["message"] == 'a "quoted" message\nwith a newline and \\ backslash'
    assert parsed[0]["level"] == "WARNING" and parsed[0]["logger"] == "mlx_proxy.test"
    assert parsed[1] | {"time": ""} == {"time": "", "level": "INFO", "logger": "mlx_proxy.access",
                                        "message": parsed[1]["message"], "request_id": "id1", "method": "POST",
                                        "route": "/v1/chat/completions", "status": 200, "cache": "HIT",
                                        "latency_ms": 12.3, "prompt_tokens": 1, "completion_tokens": 2,
                                        "error": None}
    assert "ValueError: boom" in parsed[2]["exception"]


def test_text_format_is_one_readable_line():
    record = RequestRecord("rid", "GET", "/health", 0.0, status=200, seconds=0.002)
    assert format_access_line(record, False) == "GET /health 200 cache=- 2.0ms tokens=- id=rid"
