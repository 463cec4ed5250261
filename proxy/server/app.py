"""Builds the aiohttp application and runs it: routes, middlewares, start-up and shutdown."""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from ..config import Settings
from ..generation.pipeline import Pipeline
from ..routes import admin, openai, passthrough, probes, protocols
from ..routes.state import CACHE_STATUS_KEY, STATE_KEY, AppState
from ..upstream.status import UpstreamStatus
from .auth import check_exposure, is_loopback, require_api_key
from .connections import ConnectionGuard, GuardedSite
from .guard import guard_requests
from .logs import access_log_sink, add_request_id, configure_logging, observe_requests
from .metrics import METRICS_KEY, Metrics, metrics_endpoint
from .middlewares import ConnectionsRef, InFlight, add_cache_headers, close_after_unreadable_body, errors_middleware

log = logging.getLogger("mlx_proxy")


def create_app(settings: Settings, status: UpstreamStatus | None = None, in_flight: InFlight | None = None) -> web.Application:
    in_flight = in_flight or InFlight()
    keys = check_exposure(settings.host, settings.api_keys, settings.insecure_no_auth)
    metrics = Metrics()
    state = AppState.build(settings, status or UpstreamStatus(), generations=metrics, backend_calls=metrics)
    metrics.read_gauges_from(state)
    observe = observe_requests([access_log_sink(settings.log_bodies), metrics.observe_request], CACHE_STATUS_KEY)
    auth = [require_api_key(keys)] if keys else []
    guard = guard_requests(keyless_loopback=not keys and is_loopback(settings.host))
    connections = ConnectionsRef()
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[connections.middleware, in_flight.middleware, observe, errors_middleware,
                                       guard, *auth])
    app[GUARD_KEY] = connections
    app[STATE_KEY] = state
    app[METRICS_KEY] = metrics
    app.on_response_prepare.append(add_request_id)
    app.on_response_prepare.append(add_cache_headers)
    app.on_response_prepare.append(close_after_unreadable_body)

    async def state_lifetime(_app: web.Application):
        await state.start()
        yield
        await state.close()

    app.cleanup_ctx.append(state_lifetime)
    r = app.router
    for prefix in ("/v1", ""):
        r.add_post(prefix + "/chat/completions", openai.chat_completions)
        r.add_post(prefix + "/completions", openai.completions)
        r.add_get(prefix + "/models", openai.models)
        r.add_post(prefix + "/responses", protocols.create_response)
    r.add_post("/v1/messages", protocols.create_message)
    r.add_post("/v1/messages/count_tokens", protocols.count_tokens)
    r.add_get("/", protocols.root)  # aiohttp answers HEAD through the GET route
    r.add_get("/health", admin.health)
    r.add_get("/health/live", probes.live)
    r.add_get("/health/ready", probes.ready)
    r.add_get("/metrics", metrics_endpoint)
    r.add_get("/cache/stats", admin.cache_stats)
    r.add_delete("/cache/{key}", admin.cache_delete)
    r.add_post("/cache/flush", admin.cache_flush)
    r.add_route("*", "/{tail:.*}", passthrough.passthrough)
    return app


GUARD_KEY = web.AppKey("connections", ConnectionsRef)
# After the grace period, requests still running get this long before they are cancelled.
SHUTDOWN_LEFTOVER_TIMEOUT = 1.0


class ProxyServer:
    """The proxy as an object the launcher can start and stop inside its own event loop."""

    def __init__(self, settings: Settings, status: UpstreamStatus | None = None) -> None:
        self.settings = settings
        self.status = status or UpstreamStatus()
        self._in_flight = InFlight()
        self.app = create_app(settings, self.status, self._in_flight)
        self._runner: web.AppRunner | None = None
        self.guard: ConnectionGuard | None = None
        self.port = settings.port

    @property
    def pipeline(self) -> Pipeline:
        """The generations running (the launcher's watchdog reads and aborts them)."""
        return self.app[STATE_KEY].pipeline

    @property
    def in_flight(self) -> int:
        return self._in_flight.count

    async def start(self) -> None:
        # handler_cancellation: a client that disconnects cancels its handler, which frees its
        # queue slot and lets the pipeline decide whether the generation goes on.
        # shutdown_timeout: stop() has already waited the grace period for in-flight requests;
        # what is left when the runner cleans up is cancelled at once, not after aiohttp's 60 s.
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=SHUTDOWN_LEFTOVER_TIMEOUT)
        await self._runner.setup()
        limits = (self.settings.max_connections, self.settings.client_header_timeout)
        site = GuardedSite(self._runner, self.settings.host, self.settings.port, limits, backlog=1024)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            raise
        self.guard = self.app[GUARD_KEY].guard = site.guard
        self.port = self._runner.addresses[0][1]

    async def stop(self, grace: float) -> None:
        """Stop accepting, let in-flight requests finish up to `grace` seconds, then close."""
        if self._runner is None:
            return
        for site in list(self._runner.sites):
            await site.stop()
        try:
            await asyncio.wait_for(self._in_flight.idle.wait(), grace)
        except asyncio.TimeoutError:
            log.warning("%d request(s) still running after %.0fs grace; closing", self.in_flight, grace)
        await self._runner.cleanup()
        self._runner = None


async def serve_until_signalled(settings: Settings) -> None:
    server = ProxyServer(settings)
    await server.start()
    log.info("mlx-proxy listening on http://%s:%d -> %s", settings.host, server.port, settings.upstream)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: waiting up to %.0fs for %d request(s)", settings.shutdown_grace, server.in_flight)
    await server.stop(settings.shutdown_grace)


def run(settings: Settings) -> int:
    configure_logging(settings)
    try:
        asyncio.run(serve_until_signalled(settings))
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, e.strerror or e)
        return 1
    return 0
