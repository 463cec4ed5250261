"""The only code that talks to the upstream server: one pooled session, timeouts, error mapping.

Chat generations are always requested as streams (mlx_lm.server stops generating when a
streaming client goes away, never for a non-stream one) and read with four separate clocks:
connect, first token, idle between events, total. aiohttp's default 300 s total never applies.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson

from .clocks import Clock, chunk_has_token
from .config import Settings
from .errors import ProxyError
from .sse import SSEDecoder

# Headers that describe one hop, not the message (RFC 9110 7.6.1), plus those aiohttp recomputes.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
# Longest upstream error body we read back (enough for any message, bounded against garbage).
MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class Comment:
    """An SSE comment from the upstream (mlx_lm.server's `: keepalive 10/300` during prefill)."""
    text: str


def _error_message(status: int, raw: bytes) -> str:
    """mlx_lm.server answers `{"error": "..."}` (a string), OpenAI-style servers an object."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:500].decode("utf-8", "replace").strip() or f"HTTP {status}"
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err if err is not None else data)[:500]


def map_upstream_status(status: int, raw: bytes) -> ProxyError:
    """An upstream error answer -> our error. 4xx means the request could not be served as sent
    (mlx_lm.server uses 404 for template errors and bad tool-call history), 5xx an upstream fault."""
    message = f"upstream: {_error_message(status, raw)}"
    if status == 413:
        return ProxyError("request_too_large", message)
    if 400 <= status < 500 and status not in (408, 429):
        return ProxyError("upstream_rejected", message)
    if status in (429, 503):
        return ProxyError("upstream_unavailable", message, retry_after=5)
    return ProxyError("upstream_error", message)


class UpstreamClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = settings.upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # total=None: long generations are bounded by our own clocks, not aiohttp's 300 s.
            timeout = aiohttp.ClientTimeout(total=None, connect=self.settings.connect_timeout,
                                            sock_connect=self.settings.connect_timeout)
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector,
                                                  auto_decompress=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                      timeout: float | None = None) -> aiohttp.ClientResponse:
        """Open a plain request (passthrough, models, health). The caller releases the response."""
        try:
            return await self.session.request(
                method, self.base + path, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout or self.settings.total_timeout,
                                              connect=self.settings.connect_timeout))
        except asyncio.TimeoutError:
            raise ProxyError("upstream_timeout", f"upstream did not answer {method} {path} in time") from None
        except aiohttp.ClientError as e:
            raise ProxyError("upstream_unreachable", f"upstream unreachable: {type(e).__name__}") from None

    async def stream_json_events(self, path: str, body: dict) -> AsyncIterator[dict | Comment]:
        """POST a streaming request; yield each `data:` JSON object and each comment, until [DONE].

        Raises ProxyError: upstream_unreachable/upstream_error/upstream_rejected before the stream
        starts, upstream_timeout when a clock runs out (see proxy/clocks.py: bytes without a
        token do not count as progress), upstream_bad_response for garbage, and upstream_error
        when the stream ends without [DONE].
        """
        clock = self.clock()
        payload = orjson.dumps(body)  # bytes -> aiohttp sends Content-Length, never chunked
        resp = await self.open(clock, "POST", path, payload,
                                {"Content-Type": "application/json", "Accept": "text/event-stream"})
        try:
            if resp.status != 200:
                raise map_upstream_status(resp.status, await _read_bounded(resp))
            if resp.content_type != "text/event-stream":
                await _read_bounded(resp)
                raise ProxyError("upstream_bad_response",
                                 f"upstream answered {resp.content_type or 'no content type'} instead of an event stream")
            decoder = SSEDecoder()
            while True:
                chunk = await self.read_within(clock, resp)
                events = decoder.feed(chunk) if chunk else decoder.close()
                for ev in events:
                    if ev.data is None:
                        if ev.comment is not None:
                            yield Comment(ev.comment)
                        continue
                    if ev.data.strip() == "[DONE]":
                        return
                    obj = _event_object(ev.data)
                    if chunk_has_token(obj):
                        clock.token(time.monotonic())
                    yield obj
                if not chunk:
                    raise ProxyError("upstream_error", "upstream closed the stream before it finished")
        finally:
            resp.close()  # closing mid-stream drops the connection: mlx_lm.server stops generating

    def clock(self) -> Clock:
        s = self.settings
        return Clock(s.first_token_timeout, s.idle_timeout, s.total_timeout, time.monotonic())

    async def open(self, clock: Clock, method: str, path: str, body: bytes | None,
                    headers: dict[str, str]) -> aiohttp.ClientResponse:
        """Send a request; its response headers must come within the clock's first budget."""
        wait, which = clock.remaining(time.monotonic())
        try:
            async with asyncio.timeout(wait):
                return await self.session.request(method, self.base + path, data=body, headers=headers,
                                                  allow_redirects=False)
        except TimeoutError:
            raise ProxyError("upstream_timeout", "no response headers: " + clock.message(which)) from None
        except aiohttp.ClientError as e:
            raise ProxyError("upstream_unreachable", f"upstream unreachable: {type(e).__name__}") from None

    @staticmethod
    async def read_within(clock: Clock, resp: aiohttp.ClientResponse) -> bytes:
        """The next piece of the body (b"" at its end) before the clock runs out."""
        wait, which = clock.remaining(time.monotonic())
        if wait <= 0:
            raise ProxyError("upstream_timeout", clock.message(which))
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that lands as a chunk arrives, and a cancelled generation must stop.
            async with asyncio.timeout(wait):
                return await resp.content.readany()
        except TimeoutError:
            raise ProxyError("upstream_timeout", clock.message(which)) from None
        except aiohttp.ClientError:
            raise ProxyError("upstream_error", "upstream closed the connection mid-stream") from None


def _event_object(data: str) -> dict:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProxyError("upstream_bad_response", "upstream sent an event that is not JSON") from None
    if not isinstance(obj, dict):
        raise ProxyError("upstream_bad_response", "upstream sent an event that is not an object")
    if "error" in obj and "choices" not in obj:
        raise ProxyError("upstream_error", f"upstream: {_error_message(500, data.encode())}")
    return obj


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    try:
        async with asyncio.timeout(10):
            return await resp.content.read(MAX_ERROR_BODY)
    except (TimeoutError, aiohttp.ClientError):
        return b""
