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

from ..config import Settings
from ..errors import ProxyError
from ..sse import SSEDecoder, SSEEvent
from .clocks import Clock, chunk_has_token
from .errors import map_error_event, map_upstream_status

# Headers that describe one hop, not the message (RFC 9110 7.6.1), plus those aiohttp recomputes.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "transfer-encoding", "upgrade", "host", "content-length"})
# Idle pooled connections are dropped after this long: below the 5 s after which llama.cpp's
# server and uvicorn (llama-cpp-python, vLLM) close them, so a request never goes out on a
# connection the upstream has just closed (open() still retries once if it does).
UPSTREAM_KEEPALIVE = 4.0
# Where chat generations go on every upstream.
CHAT_PATH = "/v1/chat/completions"
# Longest upstream error body we read back (enough for any message, bounded against garbage).
MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class Comment:
    """An SSE comment from the upstream (mlx_lm.server's `: keepalive 10/300` during prefill)."""
    text: str


class UpstreamClient:
    def __init__(self, settings: Settings, base: str | None = None) -> None:
        """`base`: the server's URL (default: the first upstream)."""
        self.settings = settings
        self.base = (base or settings.primary_upstream).rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # total=None: long generations are bounded by our own clocks, not aiohttp's 300 s.
            timeout = aiohttp.ClientTimeout(total=None, connect=self.settings.connect_timeout,
                                            sock_connect=self.settings.connect_timeout)
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE)
            # No Accept-Encoding of our own: responses pass through as they come (auto_decompress
            # off), so only a client that asked for compression may get it.
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False,
                                                  skip_auto_headers=("User-Agent", "Accept-Encoding"))
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

    async def stream_json_batches(self, path: str, body: dict, payload: bytes | None = None
                                  ) -> AsyncIterator[list[dict | Comment]]:
        """POST a streaming request; yield, for each read, its `data:` JSON objects and comments
        in order, until [DONE]. (Per read, not per event: a generating server sends many events
        per read, and everything after this works on them together.)

        Raises ProxyError: upstream_unreachable/upstream_error/upstream_rejected before the stream
        starts, upstream_timeout when a clock runs out (see proxy/upstream/clocks.py: bytes without a
        token do not count as progress), upstream_bad_response for garbage, and upstream_error
        when the stream ends without [DONE].
        """
        clock = self.clock()
        if payload is None:  # (`payload`: `body` already encoded by the caller)
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
            heard = False  # any event at all: a stream cut before its first is diagnosed
            while True:
                try:
                    chunk = await self.read_within(clock, resp)
                except ProxyError as e:
                    if heard or e.code != "upstream_error":
                        raise
                    chunk = b""
                events = decoder.feed(chunk) if chunk else decoder.close()
                heard = heard or bool(events)
                batch, done, error = _read_events(events)
                if error is not None:  # what came before the bad event is still passed on
                    if batch:
                        yield batch
                    raise error
                if any(not isinstance(item, Comment) and chunk_has_token(item) for item in batch):
                    clock.token(time.monotonic())
                if batch:
                    yield batch
                if done:
                    return
                if not chunk:
                    if not heard:
                        raise await self._diagnose(clock, path, body)
                    raise ProxyError("upstream_error", "upstream closed the stream before it finished")
        finally:
            resp.close()  # closing mid-stream drops the connection: mlx_lm.server stops generating

    async def _diagnose(self, clock: Clock, path: str, body: dict) -> ProxyError:
        """The upstream accepted a stream and closed it before any event (llama-cpp-python does
        so for a prompt longer than its context: it raises after the headers). Asked the same
        without streaming, for one token, it answers the error it means, with its status."""
        plain = {k: v for k, v in body.items() if k != "stream_options"}
        plain.update(stream=False, max_tokens=1, max_completion_tokens=1)
        cut = ProxyError("upstream_error", "upstream closed the stream before sending anything")
        try:
            resp = await self.open(clock, "POST", path, orjson.dumps(plain), {"Content-Type": "application/json"})
        except ProxyError:
            return cut
        try:
            return map_upstream_status(resp.status, await _read_bounded(resp)) if resp.status >= 400 else cut
        finally:
            resp.close()

    def clock(self) -> Clock:
        s = self.settings
        return Clock(s.first_token_timeout, s.idle_timeout, s.total_timeout, time.monotonic())

    async def open(self, clock: Clock, method: str, path: str, body: bytes | None,
                    headers: dict[str, str]) -> aiohttp.ClientResponse:
        """Send a request; its response headers must come within the clock's first budget."""
        for attempt in range(2):
            wait, which = clock.remaining(time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    return await self.session.request(method, self.base + path, data=body, headers=headers,
                                                      allow_redirects=False)
            except TimeoutError:
                raise ProxyError("upstream_timeout", "no response headers: " + clock.message(which)) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
                # A pooled keep-alive connection the upstream had already closed: the request
                # never reached it, so once more on a fresh connection is safe.
                if attempt or isinstance(e, aiohttp.ClientConnectorError):
                    raise ProxyError("upstream_unreachable", f"upstream unreachable: {type(e).__name__}") from None
            except aiohttp.ClientError as e:
                raise ProxyError("upstream_unreachable", f"upstream unreachable: {type(e).__name__}") from None
        raise AssertionError("unreachable")

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


def _read_events(events: list[SSEEvent]) -> tuple[list[dict | Comment], bool, ProxyError | None]:
    """The items of one read, in order: (items, whether [DONE] came, the error of a bad event
    with the items before it). Their JSON is parsed in one call: per event, orjson's own cost
    is small beside the call's."""
    items: list[dict | Comment | str] = []
    done = False
    for ev in events:
        data = ev.data
        if data is None:
            if ev.comment is not None:
                items.append(Comment(ev.comment))
        elif data[:1] != "{" and data.strip() == "[DONE]":
            done = True
            break
        else:
            items.append(data)
    datas = [item for item in items if type(item) is str]
    if not datas:
        return items, done, None  # type: ignore[return-value]
    try:
        objects = orjson.loads("[" + ",".join(datas) + "]")
    except orjson.JSONDecodeError:
        objects = None  # some event is no JSON: each is parsed alone, to say which
    if objects is not None and len(objects) != len(datas):
        objects = None  # an event held a top-level comma (`1,2`): not one value each
    if objects is not None and len(datas) == len(items) and all(_is_chunk(o) for o in objects):
        return objects, done, None  # the usual read: chunks only
    out: list[dict | Comment] = []
    n = 0
    for item in items:
        if type(item) is not str:
            out.append(item)  # type: ignore[arg-type]
            continue
        try:
            out.append(_event_object(item, objects[n] if objects is not None else None))
        except ProxyError as e:
            return out, False, e
        n += 1
    return out, done, None


def _is_chunk(obj: object) -> bool:
    """An event object that is a chunk (an object, and not an error event)."""
    return type(obj) is dict and ("error" not in obj or "choices" in obj)


def _event_object(data: str, parsed: object = None) -> dict:
    """One event's object (`parsed`: already parsed from `data`), or the error it means."""
    if parsed is None:
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ProxyError("upstream_bad_response", "upstream sent an event that is not JSON") from None
    if type(parsed) is not dict:
        raise ProxyError("upstream_bad_response", "upstream sent an event that is not an object")
    if not _is_chunk(parsed):
        raise map_error_event(data)
    return parsed


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    try:
        async with asyncio.timeout(10):
            return await resp.content.read(MAX_ERROR_BODY)
    except (TimeoutError, aiohttp.ClientError):
        return b""
