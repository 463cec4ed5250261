"""A minimal OpenAI-compatible upstream that answers at once: the baseline for proxy benchmarks.

    python bench/fast_upstream.py PORT

It does what any real upstream must do per request (read the body, parse the JSON) and then
answers a fixed short completion, as JSON or as a short SSE stream, so a benchmark measures the
proxy's own cost and nothing else.
"""
from __future__ import annotations

import sys

import orjson
from aiohttp import web

TEXT = "The answer is forty-two."
USAGE = {"prompt_tokens": 25000, "completion_tokens": 7, "total_tokens": 25007}


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"id": "chatcmpl-fast", "object": "chat.completion.chunk", "created": 1,
                                     "model": "fast", "choices": [{"index": 0, "delta": delta,
                                                                   "finish_reason": finish}]}) + b"\n\n"


STREAM = (_chunk({"role": "assistant", "content": TEXT[:12]}) + _chunk({"content": TEXT[12:]})
          + _chunk({}, "stop")
          + b"data: " + orjson.dumps({"id": "chatcmpl-fast", "object": "chat.completion.chunk", "created": 1,
                                      "model": "fast", "choices": [], "usage": USAGE}) + b"\n\n"
          + b"data: [DONE]\n\n")
MESSAGE = orjson.dumps({"id": "chatcmpl-fast", "object": "chat.completion", "created": 1, "model": "fast",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT},
                                     "finish_reason": "stop"}], "usage": USAGE})


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    if body.get("stream"):
        return web.Response(body=STREAM, content_type="text/event-stream")
    return web.Response(body=MESSAGE, content_type="application/json")


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/ready", ready)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
