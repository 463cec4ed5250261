"""Metrics, health and probes after a scripted sequence: miss, hit, upstream error, timeout."""
from __future__ import annotations

import concurrent.futures
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.rig.scripted_upstream import Script

URL = "/v1/chat/completions"


def chat(content: str) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def scrape(proxy) -> dict[tuple[str, tuple], float]:
    """Every sample as (name, sorted labels) -> value."""
    r = httpx.get(proxy.url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def run_sequence(scripted, proxy) -> list[httpx.Response]:
    scripted.script(Script(text="answer", usage={"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}),
                    Script(status=500),
                    Script(text="late", first_delay=2.0))
    return [httpx.post(proxy.url + URL, json=chat("same"), timeout=10),       # miss
            httpx.post(proxy.url + URL, json=chat("same"), timeout=10),       # hit
            httpx.post(proxy.url + URL, json=chat("fails"), timeout=10),      # upstream 500 -> 502
            httpx.post(proxy.url + URL, json=chat("too slow"), timeout=10)]   # first token timeout -> 504


def test_metrics_after_hit_miss_error_timeout(scripted, start_proxy):
    proxy = start_proxy(scripted.url, first_token_timeout=0.5)
    responses = run_sequence(scripted, proxy)
    assert [r.status_code for r in responses] == [200, 200, 502, 504]
    assert [r.headers.get("X-Cache-Status") for r in responses[:2]] == ["MISS", "HIT"]
    m = scrape(proxy)
    route = "/v1/chat/completions"
    assert value(m, "mlx_proxy_requests_total", route=route, method="POST", status="200", cache="MISS",
                 error="none") == 1
    assert value(m, "mlx_proxy_requests_total", route=route, method="POST", status="200", cache="HIT",
                 error="none") == 1
    assert value(m, "mlx_proxy_requests_total", route=route, method="POST", status="502", cache="MISS",
                 error="upstream_error") == 1
    assert value(m, "mlx_proxy_requests_total", route=route, method="POST", status="504", cache="MISS",
                 error="upstream_timeout") == 1
    assert value(m, "mlx_proxy_cache_results_total", result="hit") == 1
    assert value(m, "mlx_proxy_cache_results_total", result="miss") == 3
    assert value(m, "mlx_proxy_cache_store_total", outcome="stored") == 1
    assert value(m, "mlx_proxy_upstream_failures_total", code="upstream_error") == 1
    assert value(m, "mlx_proxy_upstream_failures_total", code="upstream_timeout") == 1
    # tokens are counted once per generation (the hit generated nothing)
    assert value(m, "mlx_proxy_upstream_tokens_total", kind="prompt") == 11
    assert value(m, "mlx_proxy_upstream_tokens_total", kind="generated") == 7
    assert value(m, "mlx_proxy_upstream_first_token_seconds_count") == 1
    assert value(m, "mlx_proxy_request_duration_seconds_count", route=route) == 4
    assert value(m, "mlx_proxy_request_duration_seconds_bucket", route=route, le="1800.0") == 4
    assert value(m, "mlx_proxy_queue_wait_seconds_count") == 3  # every generation took a slot
    assert value(m, "mlx_proxy_queue_depth", **{"class": "interactive"}) == 0
    assert value(m, "mlx_proxy_upstream_serving") == 1
    assert value(m, "mlx_proxy_cache_breaker_state", backend="memory") == 0
    assert value(m, "mlx_proxy_cache_backend_duration_seconds_count", backend="memory", op="get") >= 1  # lookups are timed
    # no label ever carries a key, a path with an id, or a prompt
    text = httpx.get(proxy.url + "/metrics").text
    assert "mlxproxy:v1" not in text and "same" not in text


def test_route_label_is_the_pattern_not_the_path(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    httpx.delete(proxy.url + "/cache/mlxproxy:v1:abc")
    httpx.get(proxy.url + "/some/unknown/path")
    m = scrape(proxy)
    assert value(m, "mlx_proxy_requests_total", route="/cache/{key}", method="DELETE", status="404", cache="-",
                 error="not_found") == 1
    assert value(m, "mlx_proxy_requests_total", route="/{tail}", method="GET", status="200", cache="-",
                 error="none") == 1
    assert not any("abc" in str(labels) or "unknown" in str(labels) for _, labels in m)


def test_health_after_the_sequence(scripted, start_proxy):
    proxy = start_proxy(scripted.url, first_token_timeout=0.5)
    run_sequence(scripted, proxy)
    health = httpx.get(proxy.url + "/health").json()
    assert health["status"] == "healthy" and health["version"]
    assert health["cache"]["hits"] == 1 and health["cache"]["misses"] == 3
    assert health["cache"]["cached_items"] == 1
    assert health["queue"]["admitted"] == 3 and health["queue"]["running"] == 0
    assert health["upstream"]["reachable"] is True
    assert {"cache", "upstream", "queue", "rules"} <= health.keys()


def test_live_answers_without_io_and_ready_follows_the_upstream(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    assert httpx.get(proxy.url + "/health/live").json() == {"status": "alive"}
    ready = httpx.get(proxy.url + "/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert scripted.chat_calls == 0  # readiness never runs a generation
    proxy.status.set("loading", "model weights")
    assert httpx.get(proxy.url + "/health/ready").status_code == 503
    assert httpx.get(proxy.url + "/health/live").status_code == 200  # alive while not ready
    proxy.status.set("ready")
    scripted.close()  # upstream gone: not ready, still alive
    assert httpx.get(proxy.url + "/health/ready").status_code == 503
    assert httpx.get(proxy.url + "/health/live").status_code == 200


def test_ready_needs_a_configured_redis(scripted, start_proxy, redis_server):
    proxy = start_proxy(scripted.url, cache=redis_server.url)
    r = httpx.get(proxy.url + "/health/ready")
    assert r.status_code == 200 and r.json()["cache"] == "reachable"
    redis_server.kill()
    r = httpx.get(proxy.url + "/health/ready")
    assert r.status_code == 503 and r.json()["cache"] == "unreachable"
    m = scrape(proxy)
    assert any(name == "mlx_proxy_cache_backend_duration_seconds_count" and ("backend", "redis") in labels
               for name, labels in m)


def test_redis_errors_and_breaker_state_are_exposed(scripted, start_proxy, redis_server):
    scripted.script(Script(text="x"))
    proxy = start_proxy(scripted.url, cache=redis_server.url)
    redis_server.kill()
    for i in range(4):  # three failures open the breaker
        assert httpx.post(proxy.url + URL, json=chat(f"r{i}"), timeout=10).status_code == 200
    m = scrape(proxy)
    errors = sum(v for (name, labels), v in m.items() if name == "mlx_proxy_cache_backend_errors_total")
    assert errors >= 3
    assert value(m, "mlx_proxy_cache_breaker_state", backend="redis") == 2
    assert value(m, "mlx_proxy_cache_results_total", result="error") == 4


def test_coalesced_requests_and_restarts_are_counted(scripted, start_proxy):
    scripted.script(Script(text="shared", first_delay=0.5))
    proxy = start_proxy(scripted.url)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(httpx.post, proxy.url + URL, json=chat("together"), timeout=10)
        deadline = time.monotonic() + 5
        while scripted.chat_calls == 0 and time.monotonic() < deadline:  # the first is generating
            time.sleep(0.01)
        second = pool.submit(httpx.post, proxy.url + URL, json=chat("together"), timeout=10)
        statuses = sorted(f.result().headers["X-Cache-Status"] for f in (first, second))
    assert statuses == ["COALESCED", "MISS"] and scripted.chat_calls == 1
    proxy.status.record_restart("crash")
    proxy.status.record_restart("crash")
    proxy.status.record_restart("wedged")
    m = scrape(proxy)
    assert value(m, "mlx_proxy_cache_results_total", result="coalesced") == 1
    assert value(m, "mlx_proxy_upstream_generation_duration_seconds_count") == 1
    assert value(m, "mlx_proxy_upstream_restarts_total", cause="crash") == 2
    assert value(m, "mlx_proxy_upstream_restarts_total", cause="wedged") == 1


def test_store_skips_are_counted_by_reason(scripted, start_proxy):
    scripted.script(Script(text="", finish_reason="stop"))  # nothing generated: not worth storing
    proxy = start_proxy(scripted.url)
    httpx.post(proxy.url + URL, json=chat("empty"), timeout=10)
    scripted.script(Script(text="kept out"))
    httpx.post(proxy.url + URL, json=chat("no store"), headers={"Cache-Control": "no-store"}, timeout=10)
    m = scrape(proxy)
    assert value(m, "mlx_proxy_cache_store_total", outcome="skipped_not_cacheable") == 1
    assert value(m, "mlx_proxy_cache_store_total", outcome="skipped_not_requested") == 1
    assert value(m, "mlx_proxy_cache_store_total", outcome="stored") == 0


def test_a_stream_cut_by_an_error_event_is_counted_and_logged_as_failed(scripted, start_proxy, caplog):
    """The status line said 200 before the upstream went silent: the record still says failed."""
    proxy = start_proxy(scripted.url, idle_timeout=0.3)
    scripted.script(Script(text="partial answer", stall_after=2))
    with caplog.at_level("INFO", logger="mlx_proxy.access"):
        r = httpx.post(proxy.url + URL, json={**chat("cut"), "stream": True}, timeout=10)
    assert r.status_code == 200 and '"code":"upstream_timeout"' in r.text.replace(" ", "")
    m = scrape(proxy)
    assert value(m, "mlx_proxy_requests_total", route=URL, method="POST", status="200", cache="MISS",
                 error="upstream_timeout") == 1
    assert value(m, "mlx_proxy_requests_total", route=URL, method="POST", status="200", cache="MISS",
                 error="none") == 0
    [line] = [rec.getMessage() for rec in caplog.records if rec.name == "mlx_proxy.access" and URL in rec.getMessage()]
    assert line.startswith(f"POST {URL} 200 cache=MISS") and line.endswith(" error=upstream_timeout")
