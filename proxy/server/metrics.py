"""Prometheus metrics: `GET /metrics`, one registry per app.

Why a registry per app (not prometheus_client's global one): several proxies in one process
(tests, the launcher's own) would otherwise share and collide on metric names.

Three sources feed it:
- every request, through the request-observing middleware (`Metrics.observe_request`):
  requests by route pattern / method / status / cache status, end-to-end latency;
- the pipeline, as its `GenerationObserver` (given to it when it is built): time to first
  token, generation time, prompt and generated tokens, failures by error code, queue wait,
  store outcomes;
- the cache, as its `BackendObserver`: every backend call's latency and failure, by operation;
- the proxy's live objects, read at scrape time (`_StateCollector`): queue depth, slots in
  use, upstream state and restarts, cache breaker state.

Labels stay low-cardinality: route patterns, status codes, fixed enums. Never keys, paths,
users or API keys.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..cache.breaker import BreakerState
from ..cache.store import BackendObserver
from ..completion import Completion
from ..generation.admission import CLASS_NAMES
from ..generation.observer import GenerationObserver

if TYPE_CHECKING:
    from ..routes.state import AppState
    from .logs import RequestRecord

# End-to-end and generation latency: from a cache hit (ms) to the longest agent turn the
# proxy allows (Settings.total_timeout's 30 minutes).
LATENCY_BUCKETS = (0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)
# Time to first token: prefill of a long prompt on a laptop takes minutes.
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# Queue wait: none at all, up to a generation or two ahead.
QUEUE_WAIT_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600)
# Cache backend operations: in-process (µs) to a slow Redis hitting redis_timeout (250 ms).
BACKEND_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
# Breaker state as a number for alerting (`> 0` means the cache is being bypassed).
BREAKER_VALUES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
# X-Cache-Status values counted as cache results.
# The `error` label of a request that succeeded.
NO_ERROR = "none"
CACHE_RESULTS = ("HIT", "MISS", "COALESCED", "REFRESH", "BYPASS", "ERROR")


class Metrics(GenerationObserver, BackendObserver):
    """Built before the objects it observes, and given to them as they are built."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("mlx_proxy_requests", "Requests served, by route pattern, method, status, "
                                "X-Cache-Status and the error code they ended with (none: success; a "
                                "stream cut by an error event has status 200 and its code)",
                                ["route", "method", "status", "cache", "error"], registry=r)
        self.request_seconds = Histogram("mlx_proxy_request_duration_seconds", "End-to-end request latency",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.cache_results = Counter("mlx_proxy_cache_results", "Cache outcome of generation requests "
                                     "(hit, miss, coalesced, refresh, bypass, error)", ["result"], registry=r)
        self.store_outcomes = Counter("mlx_proxy_cache_store", "Finished generations: stored, or the "
                                      "reason they were not", ["outcome"], registry=r)
        self.backend_seconds = Histogram("mlx_proxy_cache_backend_duration_seconds", "Cache backend "
                                         "operation latency", ["backend", "op"], buckets=BACKEND_BUCKETS,
                                         registry=r)
        self.backend_errors = Counter("mlx_proxy_cache_backend_errors", "Cache backend operations that "
                                      "failed or timed out", ["backend", "op", "kind"], registry=r)
        self.first_token_seconds = Histogram("mlx_proxy_upstream_first_token_seconds", "Upstream time to "
                                             "first token", buckets=FIRST_TOKEN_BUCKETS, registry=r)
        self.generation_seconds = Histogram("mlx_proxy_upstream_generation_duration_seconds", "Upstream "
                                            "generation time, first byte sent to last event",
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("mlx_proxy_upstream_tokens", "Tokens the upstream processed (prompt) and "
                              "generated (completion)", ["kind"], registry=r)
        self.failures = Counter("mlx_proxy_upstream_failures", "Generations that failed, by error code",
                                ["code"], registry=r)
        self.queue_wait = Histogram("mlx_proxy_queue_wait_seconds", "Wait for an upstream slot",
                                    buckets=QUEUE_WAIT_BUCKETS, registry=r)
        # The pool's upstreams are few and named in the configuration: fine as labels.
        self.routed_total = Counter("mlx_proxy_routed", "Generations sent to each pool upstream, by why "
                                    "(affinity, new, fallback, only_healthy, steered, round_robin)",
                                    ["upstream", "reason"], registry=r)
        self.prefix_reused_total = Counter("mlx_proxy_prefix_tokens_reused", "Prompt tokens an upstream's KV "
                                     "cache already held (its cached_tokens)", ["upstream"], registry=r)
        # (route, method, status, cache status) -> labelled children; the label sets are few
        self._request_children: dict[tuple, tuple] = {}
        self._backend_children: dict[tuple[str, str], object] = {}

    def read_gauges_from(self, state: AppState) -> None:
        """The live objects whose gauges are read at each scrape."""
        self.registry.register(_StateCollector(state))

    # --- requests ------------------------------------------------------------------------------
    def observe_request(self, record: RequestRecord) -> None:
        labels = (record.route, record.method, record.status, record.cache_status, record.error)
        children = self._request_children.get(labels)
        if children is None:  # labels() validates and locks: done once per label set, not per request
            cache = record.cache_status
            children = self._request_children[labels] = (
                self.requests.labels(record.route, record.method, str(record.status), cache,
                                     record.error or NO_ERROR),
                self.request_seconds.labels(record.route),
                self.cache_results.labels(cache.lower()) if cache in CACHE_RESULTS else None)
        total, seconds, cache_result = children
        total.inc()
        seconds.observe(record.seconds)
        if cache_result is not None:
            cache_result.inc()

    # --- pipeline ------------------------------------------------------------------------------
    def queue_waited(self, seconds: float) -> None:
        self.queue_wait.observe(seconds)

    def first_token(self, seconds: float) -> None:
        self.first_token_seconds.observe(seconds)

    def generated(self, completion: Completion, seconds: float) -> None:
        self.generation_seconds.observe(seconds)
        if completion.usage is not None:
            self.tokens.labels("prompt").inc(completion.usage.prompt_tokens)
            self.tokens.labels("generated").inc(completion.usage.completion_tokens)

    def failed(self, code: str) -> None:
        self.failures.labels(code).inc()

    def routed(self, upstream: str, reason: str) -> None:
        self.routed_total.labels(upstream, reason).inc()

    def prefix_reused(self, upstream: str, tokens: int) -> None:
        self.prefix_reused_total.labels(upstream).inc(tokens)

    def store_outcome(self, outcome: str) -> None:
        self.store_outcomes.labels(outcome).inc()

    # --- cache backend -------------------------------------------------------------------------
    def backend_call(self, backend: str, op: str, seconds: float, failure: str | None) -> None:
        histogram = self._backend_children.get((backend, op))
        if histogram is None:
            histogram = self._backend_children[(backend, op)] = self.backend_seconds.labels(backend, op)
        histogram.observe(seconds)
        if failure is not None:
            self.backend_errors.labels(backend, op, failure).inc()

    # --- exposition ----------------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector:
    """Gauges read from the live objects at scrape time (never stale, no bookkeeping)."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self):
        s = self.state
        depth = GaugeMetricFamily("mlx_proxy_queue_depth", "Requests waiting for an upstream slot",
                                  labels=["class"])
        queue = s.pool.admission_json()
        queued = queue["queued_by_class"]
        for name in CLASS_NAMES.values():
            depth.add_metric([name], queued[name])
        yield depth
        yield GaugeMetricFamily("mlx_proxy_upstream_slots_in_use", "Generations holding an upstream slot",
                                value=queue["running"])
        yield CounterMetricFamily("mlx_proxy_queue_rejected", "Requests refused with 503 (queue full)",
                                  value=queue["rejected"])
        yield GaugeMetricFamily("mlx_proxy_generations_in_flight", "Generations running (shared by "
                                "coalesced requests)", value=len(s.pipeline.flights))
        yield GaugeMetricFamily("mlx_proxy_upstream_serving", "1 when the upstream accepts requests",
                                value=1 if s.status.serving else 0)
        restarts = CounterMetricFamily("mlx_proxy_upstream_restarts", "Upstream restarts by the launcher",
                                       labels=["cause"])
        for cause, count in sorted(s.status.restart_causes.items()):
            restarts.add_metric([str(cause)], count)
        yield restarts
        breaker = GaugeMetricFamily("mlx_proxy_cache_breaker_state", "Cache circuit breaker: 0 closed, "
                                    "1 half-open (probing), 2 open (cache bypassed)", labels=["backend"])
        breaker.add_metric([s.cache.backend.name], BREAKER_VALUES[s.cache.breaker.state])
        yield breaker


METRICS_KEY = web.AppKey("metrics", Metrics)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """`GET /metrics` in Prometheus' text format."""
    body = request.app[METRICS_KEY].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
