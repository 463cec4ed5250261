"""Liveness and readiness probes for orchestrators and load balancers.

`/health/live` answers from memory (no I/O): the process and its event loop are alive; a
failing liveness probe means "restart me", so it must not depend on the model or Redis.
`/health/ready` says whether a request sent now can be served: the upstream serves and, when a
shared cache is configured, it answers. It never runs a generation (a probe every few seconds
must not compete with users for the model).
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from .admin import known_serving, probe_upstream
from .state import STATE_KEY, AppState


async def live(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def _cache_reachable(state: AppState) -> bool | None:
    """None when there is nothing remote to reach (memory cache, or none)."""
    backend = state.cache.backend
    if backend.op_timeout is None or not backend.enabled:
        return None
    try:
        async with asyncio.timeout(backend.op_timeout * 4):  # a probe may wait longer than a request
            await backend.counts()
    except Exception:
        return False
    return True


async def ready(request: web.Request) -> web.Response:
    state: AppState = request.app[STATE_KEY]
    upstream = known_serving(state)
    if upstream is None:
        upstream = state.status.serving and await probe_upstream(state)
    cache = await _cache_reachable(state)
    ok = upstream and cache is not False
    body = {"status": "ready" if ok else "not_ready", "upstream": upstream, "upstream_state": state.status.state,
            "cache": {None: "local", True: "reachable", False: "unreachable"}[cache]}
    return web.json_response(body, status=200 if ok else 503)
