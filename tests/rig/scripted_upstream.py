"""A scripted OpenAI-compatible upstream: answers each request the way the test says.

Deterministic cases the real model cannot produce on demand: exact tool-call texts, chunking
and timing, error answers, garbage, hangs, a connection closed mid-stream. Scripts are taken
per request in order (the last one repeats); every request received is recorded.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web

from launcher.cli import free_port

from .loop_thread import LoopThread


@dataclass
class Script:
    text: str = "Hello from the scripted upstream."
    chunks: list[str] | None = None  # content pieces; default: the text in 8-char slices
    reasoning: str | None = None
    tool_calls: list[dict] | None = None  # structured calls sent in one delta (mlx_lm.server style)
    finish_reason: str = "stop"
    usage: dict = field(default_factory=lambda: {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    first_delay: float = 0.0  # before the first data event (prefill)
    delay: float = 0.0  # between events
    comments_during_first_delay: float = 0.0  # send ": keepalive" comments this often while waiting
    status: int = 200
    raw_body: bytes | None = None  # answer exactly this body (with `status`) instead of a stream
    content_type: str = "application/json"  # of raw_body (a recorded stream: text/event-stream)
    hang_before_headers: bool = False
    stall_after: int | None = None  # stop sending (keep the socket open) after N events
    close_after: int | None = None  # drop the connection after N events
    send_done: bool = True
    # After `trickle_after` events, send one byte every `trickle` seconds for ever (an SSE
    # comment, byte by byte): bytes that carry no token.
    trickle: float | None = None
    trickle_after: int = 0


@dataclass
class Received:
    path: str
    body: dict | None
    headers: dict
    at: float


class ScriptedUpstream:
    def __init__(self, loop_thread: LoopThread) -> None:
        self._lt = loop_thread
        self.scripts: list[Script] = [Script()]
        self.responder: Callable[[dict], Script] | None = None
        self.model_name = "scripted-model"  # what its /v1/models lists
        self.owned_by = "scripted"  # ... and as whose ("me": what llama-cpp-python says)
        self.health_status = 200  # llama-cpp-python has no /health: 404
        # llama-cpp-python's --interrupt_requests: a new request cuts the stream being answered
        self.interrupts = False
        self._answering: list[web.Request] = []
        self.received: list[Received] = []
        self.active = 0  # requests being answered right now
        self.max_active = 0
        self.cancelled = 0  # streams whose client (the proxy) went away before the end
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None
        loop_thread.run(self._start())

    def script(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.responder = None

    def respond_with(self, responder: Callable[[dict], Script]) -> None:
        """Answer each request with `responder(chat request body)` instead of the scripts (for a
        real client whose requests depend on earlier answers, as an agent's tool round trip)."""
        self.responder = responder

    @property
    def chat_calls(self) -> int:
        return sum(1 for r in self.received if r.path.endswith("/chat/completions"))

    def _next(self) -> Script:
        return self.scripts.pop(0) if len(self.scripts) > 1 else self.scripts[0]

    async def _start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)  # legacy completions: the same scripts
        app.router.add_post("/v1/slow/{tail:.*}", self._chat)  # a passthrough path that streams
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def close(self) -> None:
        if self._runner is not None:
            self._lt.run(self._runner.cleanup())

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"} if self.health_status == 200 else {"detail": "Not Found"},
                                 status=self.health_status)

    async def _models(self, request: web.Request) -> web.Response:
        """What an OpenAI-compatible server says it serves (the proxy asks once, at start-up)."""
        return web.json_response({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "owned_by": self.owned_by}]})

    async def _echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path_qs, None, dict(request.headers), time.monotonic()))
        return web.json_response({"method": request.method, "path": request.path_qs,
                                  "body": body.decode("utf-8", "replace"),
                                  "headers": dict(request.headers)}, headers={"X-Upstream": "scripted"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        self.received.append(Received(request.path, body, dict(request.headers), time.monotonic()))
        s = self.responder(body) if self.responder is not None else self._next()
        if self.interrupts:
            for other in self._answering:
                if other.transport is not None:
                    other.transport.close()
        self._answering.append(request)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            return await self._answer(request, body, s)
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
            self._answering.remove(request)

    async def _answer(self, request: web.Request, body: dict, s: Script) -> web.StreamResponse:
        if s.hang_before_headers:
            await asyncio.Event().wait()
        if s.raw_body is not None or s.status != 200:
            body = s.raw_body if s.raw_body is not None else b'{"error": "scripted failure"}'
            return web.Response(status=s.status, body=body, content_type=s.content_type)
        events = _events(s)
        if not body.get("stream"):
            return web.json_response(_as_message(s))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        waited = 0.0
        while waited < s.first_delay:
            step = min(s.first_delay - waited, s.comments_during_first_delay or s.first_delay)
            await asyncio.sleep(step)
            waited += step
            if s.comments_during_first_delay and waited < s.first_delay:
                await resp.write(f": keepalive {int(waited * 10)}/{int(s.first_delay * 10)}\n\n".encode())
        for i, ev in enumerate(events):
            if s.trickle is not None and i >= s.trickle_after:
                await _trickle(resp, s.trickle)
            if i and s.delay:
                await asyncio.sleep(s.delay)
            if s.close_after is not None and i >= s.close_after:
                request.transport.close()
                return resp
            if s.stall_after is not None and i >= s.stall_after:
                await asyncio.Event().wait()
            await resp.write(b"data: " + orjson.dumps(ev) + b"\n\n")
        if s.send_done:
            await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


async def _trickle(resp: web.StreamResponse, every: float) -> None:
    while True:
        for byte in b": keepalive\n\n":
            await resp.write(bytes([byte]))
            await asyncio.sleep(every)


def _chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1, "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _events(s: Script) -> list[dict]:
    pieces = s.chunks if s.chunks is not None else [s.text[i:i + 8] for i in range(0, len(s.text), 8)]
    out = []
    if s.reasoning:
        out.append(_chunk({"role": "assistant", "reasoning": s.reasoning}))
    out += [_chunk({"role": "assistant", "content": p}) for p in pieces]
    if s.tool_calls:
        out.append(_chunk({"role": "assistant", "tool_calls": s.tool_calls}))
    out.append(_chunk({"role": "assistant"}, s.finish_reason))
    out.append({"id": "chatcmpl-scripted", "object": "chat.completion", "created": 1, "model": "scripted",
                "choices": [], "usage": s.usage})
    return out


def _as_message(s: Script) -> dict:
    msg: dict = {"role": "assistant", "content": "".join(s.chunks) if s.chunks is not None else s.text}
    if s.tool_calls:
        msg["tool_calls"] = s.tool_calls
    return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": 1, "model": "scripted",
            "choices": [{"index": 0, "message": msg, "finish_reason": s.finish_reason}], "usage": s.usage}


@pytest.fixture(scope="session")
def server_loop():
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture
def scripted(server_loop):
    up = ScriptedUpstream(server_loop)
    yield up
    up.close()
