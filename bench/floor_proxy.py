"""The least an aiohttp proxy can do: forward the body's bytes and relay the answer's bytes.

    python bench/floor_proxy.py PORT UPSTREAM_URL

No parsing, no cache, no normalization: a request in, the same bytes to the upstream, each piece
of the answer written on as it arrives. Its added latency in the miss table is the floor that
the framework (aiohttp server and client, one more loopback hop, one more copy of a 100 KB body)
sets for any proxy built on it, so the proxy's own cost is what it adds above this row.
"""
from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)


def make_forward(upstream: str):
    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with request.app[SESSION].post(upstream + request.path, data=body, headers=headers) as up:
            resp = web.StreamResponse(status=up.status,
                                      headers={"Content-Type": up.headers.get("Content-Type", "")})
            await resp.prepare(request)
            async for piece in up.content.iter_any():
                await resp.write(piece)
            await resp.write_eof()
            return resp

    return forward


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("upstream")
    args = ap.parse_args()

    async def session(app: web.Application):
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app = web.Application(client_max_size=1 << 30)
    app.cleanup_ctx.append(session)
    app.router.add_post("/v1/chat/completions", make_forward(args.upstream.rstrip("/")))
    app.router.add_get("/ready", ready)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
