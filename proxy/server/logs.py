"""Request logs: one line per request, as text or as JSON lines, and the request id.

Why one record per request: an operator reading logs (or a log shipper) needs method, route,
status, cache status, latency, tokens and an id that the client also sees (`X-Request-Id`) to
tie a complaint to a line. The record is filled while the request runs: the observing
middleware opens it, the pipeline (in the request's own task) adds tokens through a context
variable, and the middleware closes it and hands it to its sinks (the access log, metrics).

Prompt text and cache-key material never reach a log line unless `--log-bodies` is set.
JSON lines are built with orjson from a dict, never by formatting a string, so any message or
field value still yields valid JSON.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson
from aiohttp import web

from ..completion import Usage
from ..config import Settings

access_log = logging.getLogger("mlx_proxy.access")

REQUEST_ID_HEADER = "X-Request-Id"
# A client's X-Request-Id is echoed and logged only if it is short and plain (no log injection,
# no newline or quote to break a text line); otherwise we make our own.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# nginx's status for "client closed the request": logged when the client left mid-request.
CLIENT_CLOSED = 499
# Longest forwarded body kept in a --log-bodies line (a Claude Code request is up to ~1 MB).
MAX_LOGGED_BODY_CHARS = 64 * 1024


def request_id_for(header_value: str | None) -> str:
    """The client's id when it is acceptable, else a fresh random one."""
    if header_value and REQUEST_ID_PATTERN.fullmatch(header_value):
        return header_value
    return secrets.token_hex(8)


@dataclass
class RequestRecord:
    """What one request did; filled while it runs, logged and measured when it ends."""
    request_id: str
    method: str
    route: str  # the route pattern (low cardinality), not the raw path
    start: float
    status: int = 0
    cache_status: str = "-"
    seconds: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # The error code the request ended with: an error response, or an error event that cut a
    # stream whose status (200) was already sent.
    error: str | None = None
    # Only with --log-bodies: what went upstream and the key it was cached under.
    cache_key: str | None = None
    body: dict | None = None

    def fields(self, with_bodies: bool) -> dict:
        out: dict = {"request_id": self.request_id, "method": self.method, "route": self.route,
                     "status": self.status, "cache": self.cache_status,
                     "latency_ms": round(self.seconds * 1000, 1),
                     "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                     "error": self.error}
        if with_bodies:
            out["cache_key"] = self.cache_key
            out["body"] = self.body
        return out


def format_access_line(record: RequestRecord, with_bodies: bool) -> str:
    """The text form: `POST /v1/chat/completions 200 cache=HIT 12.3ms tokens=11+7 id=…`."""
    tokens = "-" if record.prompt_tokens is None else f"{record.prompt_tokens}+{record.completion_tokens}"
    line = (f"{record.method} {record.route} {record.status or '-'} cache={record.cache_status} "
            f"{record.seconds * 1000:.1f}ms tokens={tokens} id={record.request_id}")
    if record.error is not None:
        line += f" error={record.error}"
    if with_bodies and record.body is not None:
        body = orjson.dumps(record.body).decode()[:MAX_LOGGED_BODY_CHARS]
        line += f" key={record.cache_key} body={body}"
    return line


# --- the request being served (visible to the pipeline, which runs in the request's task) ----

_CURRENT: contextvars.ContextVar[RequestRecord | None] = contextvars.ContextVar("mlx_proxy_request",
                                                                                 default=None)


def note_usage(usage: Usage | None) -> None:
    """Tokens of the completion the current request received (a hit's tokens included)."""
    record = _CURRENT.get()
    if record is not None and usage is not None:
        record.prompt_tokens, record.completion_tokens = usage.prompt_tokens, usage.completion_tokens


def note_error(code: str) -> None:
    """The error the current request ends with (a stream's status says 200 even when it fails)."""
    record = _CURRENT.get()
    if record is not None:
        record.error = code


def note_generation(key: str, upstream_body: dict) -> None:
    """The key and forwarded body of the current request (kept only for --log-bodies lines)."""
    record = _CURRENT.get()
    if record is not None:
        record.cache_key, record.body = key, upstream_body


# --- middleware --------------------------------------------------------------------------------

RECORD_KEY = web.RequestKey("request_record", RequestRecord)
Sink = Callable[[RequestRecord], None]


def route_label(request: web.Request) -> str:
    """The matched route's pattern (`/cache/{key}`), so paths never become label values."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def observe_requests(sinks: Iterable[Sink], cache_status_key: web.RequestKey) -> Callable:
    """Middleware: request id in and out, one RequestRecord per request handed to each sink."""
    sinks = tuple(sinks)

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        record = RequestRecord(request_id_for(request.headers.get(REQUEST_ID_HEADER)), request.method,
                               route_label(request), time.monotonic())
        request[RECORD_KEY] = record
        token = _CURRENT.set(record)
        try:
            resp = await handler(request)
            record.status = resp.status
            return resp
        except web.HTTPException as e:
            record.status = e.status
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            record.status = CLIENT_CLOSED  # the client left before the response was complete
            raise
        finally:
            _CURRENT.reset(token)
            record.seconds = time.monotonic() - record.start
            record.cache_status = request.get(cache_status_key, record.cache_status)
            for sink in sinks:
                sink(record)

    return middleware


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response carries the id, streams included (their
    headers are sent when the handler starts writing, long before the middleware returns)."""
    record = request.get(RECORD_KEY)
    if record is not None:
        response.headers[REQUEST_ID_HEADER] = record.request_id


def access_log_sink(with_bodies: bool) -> Sink:
    def log_line(record: RequestRecord) -> None:
        access_log.info(format_access_line(record, with_bodies), extra={"fields": record.fields(with_bodies)})
    return log_line


# --- formatting ----------------------------------------------------------------------------------

class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, plus an access record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                     "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Same message from the same logger at most once per this many seconds.
LOG_REPEAT_INTERVAL = 10.0


class RepeatFilter(logging.Filter):
    """Lets one record of a kind (logger + first line of the message template) through per
    interval; asyncio's messages carry socket details after their first line."""

    MAX_KINDS = 1024

    def __init__(self, interval: float = LOG_REPEAT_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg).partition("\n")[0][:200])
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval) < self.interval:
            return False
        if len(self._last) >= self.MAX_KINDS:
            self._last.clear()
        self._last[kind] = now
        return True


# Loggers whose lines a client can cause at will.
NOISY_LOGGERS = ("asyncio", "aiohttp.server", "aiohttp.access", "aiohttp.web")


def limit_noisy_logs() -> None:
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(RepeatFilter())



def configure_logging(settings: Settings, stream=None) -> None:
    """Root logging for the proxy process: text (human) or JSON lines (log shippers)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    limit_noisy_logs()
