"""Health and cache administration."""
from __future__ import annotations

import asyncio

from aiohttp import web

from .. import __version__
from ..errors import ProxyError
from .state import STATE_KEY, AppState

# A bare proxy (no launcher) asks the upstream's /health with this budget per /health call.
UPSTREAM_PROBE_TIMEOUT = 2.0


# What a bare proxy asks, in order: a server without /health (llama-cpp-python answers 404
# there) is up when it lists its models.
HEALTH_PATHS = ("/health", "/v1/models")


async def probe_upstream(state: AppState) -> bool:
    for path in HEALTH_PATHS:
        try:
            resp = await asyncio.wait_for(state.upstream.request("GET", path, None, {}, timeout=UPSTREAM_PROBE_TIMEOUT),
                                          UPSTREAM_PROBE_TIMEOUT + 0.5)
        except (ProxyError, asyncio.TimeoutError):
            return False
        resp.release()
        if resp.status != 404:
            return resp.status == 200
    return False


def known_serving(state: AppState) -> bool | None:
    """Whether the upstream serves, when the proxy knows without asking: a pool's health checks
    (any member), or the launcher (its child); None for a bare proxy, which asks (probe_upstream)."""
    if state.pool.pooled:
        return state.pool.serving
    if state.status.managed:
        return state.status.serving
    return None


async def health(request: web.Request) -> web.Response:
    state: AppState = request.app[STATE_KEY]
    upstream = {"url": state.settings.primary_upstream, **state.status.to_json(),
                "profile": state.profile.to_json() if state.profile else None}
    loaded = known_serving(state)
    if loaded is None:
        loaded = upstream["reachable"] = await probe_upstream(state)
    cache = await state.cache.stats()
    degraded = cache.get("state") == "degraded"
    status = "healthy" if loaded and not degraded else ("degraded" if loaded else "unhealthy")
    return web.json_response({
        "status": status,
        "model": state.settings.served_model,
        "model_loaded": loaded,
        "version": __version__,
        "upstream": upstream,
        "cache": cache,
        "upstreams": state.pool.to_json(),  # each member of the pool: state, load, routing, warm-ups
        "queue": state.pool.admission_json(),
        "generations": state.pipeline.to_json(),
        "rules": state.normalize_config.volatile_rules.to_json(),
        "template": {**(state.template.to_json() if state.template else {"known": False}),
                     "tool_prompt": state.normalize_config.tool_prompt},
    })


async def cache_stats(request: web.Request) -> web.Response:
    state: AppState = request.app[STATE_KEY]
    return web.json_response(await state.cache.stats())


async def cache_delete(request: web.Request) -> web.Response:
    state: AppState = request.app[STATE_KEY]
    key = request.match_info["key"]
    if not await state.cache.delete(key):
        raise ProxyError("not_found", f"no cache entry {key!r}")
    return web.json_response({"deleted": key})


async def cache_flush(request: web.Request) -> web.Response:
    state: AppState = request.app[STATE_KEY]
    return web.json_response({"flushed": await state.cache.flush()})
