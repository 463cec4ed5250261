"""A minimal OpenAI-compatible upstream that answers at once: the baseline for proxy benchmarks.

    python bench/fast_upstream.py PORT [--delay-ms MS] [--tokens N]

It does what any real upstream must do per request (read the body, parse the JSON) and then
answers a fixed short completion, as JSON or as a short SSE stream, so a benchmark measures the
proxy's own cost and nothing else. With `--tokens N` a stream is N events of one token each,
each written on its own as mlx_lm.server flushes them, and `--delay-ms` waits that long first
(a model's prefill): the upstream of a miss, the same for the proxy and for a direct client.
"""
from __future__ import annotations

import argparse
import asyncio

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


def token_stream(tokens: int) -> list[bytes]:
    """The events of an answer of `tokens` one-token pieces (role first, usage last)."""
    usage = {"prompt_tokens": 25000, "completion_tokens": tokens, "total_tokens": 25000 + tokens}
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": f"w{i} "}) for i in range(tokens)]
    events.append(_chunk({}, "stop"))
    events.append(b"data: " + orjson.dumps({"id": "chatcmpl-fast", "object": "chat.completion.chunk", "created": 1,
                                            "model": "fast", "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def make_chat(delay: float, tokens: int):
    events = token_stream(tokens) if tokens else None
    text = "".join(f"w{i} " for i in range(tokens))
    message = orjson.dumps({"id": "chatcmpl-fast", "object": "chat.completion", "created": 1, "model": "fast",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                         "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 25000, "completion_tokens": tokens,
                                      "total_tokens": 25000 + tokens}}) if tokens else MESSAGE

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if delay:
            await asyncio.sleep(delay)
        if not body.get("stream"):
            return web.Response(body=message, content_type="application/json")
        if events is None:
            return web.Response(body=STREAM, content_type="text/event-stream")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:  # one write per token, as a server flushes them
            await resp.write(event)
        await resp.write_eof()
        return resp

    return chat


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    ap.add_argument("--tokens", type=int, default=0)
    args = ap.parse_args()
    app = web.Application(client_max_size=1 << 30)
    app.router.add_post("/v1/chat/completions", make_chat(args.delay_ms / 1000, args.tokens))
    app.router.add_get("/ready", ready)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
