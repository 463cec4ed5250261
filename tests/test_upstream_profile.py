"""What the proxy learns from its upstream when the user did not say: which family it is (and so
how many generations it takes at once), which model it serves (for cache keys), and whether it
is up when it has no /health."""
from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from proxy.upstream.profile import UpstreamProfile, identify
from tests.rig.scripted_upstream import Script, ScriptedUpstream


def models(*entries: tuple[str, str | None]) -> dict:
    return {"object": "list", "data": [{"id": i, "object": "model", **({"owned_by": o} if o else {})}
                                       for i, o in entries]}


@pytest.mark.parametrize("server,listed,props,kind,concurrency", [
    ("uvicorn", models(("/m/smollm.gguf", "me")), None, "llama-cpp-python", 1),
    ("llama.cpp", models(("smollm.gguf", "llamacpp")), {"total_slots": 3}, "llama.cpp", 3),
    ("llama.cpp", models(("smollm.gguf", "llamacpp")), None, "llama.cpp", 1),
    ("uvicorn", models(("Qwen/Qwen2.5-7B", "vllm")), None, "vllm", 16),
    (None, models(("qwen2.5-coder:7b", "library")), None, "ollama", 1),
    (None, models(("qwen2.5-7b-instruct", "organization_owner")), None, "lm-studio", 1),
    ("BaseHTTP/0.6 Python/3.11.7", None, None, "mlx_lm", 4),  # its /v1/models fails without a hub cache
    ("nginx", {"weird": True}, None, "unknown", 1),
])
def test_the_family_and_what_it_takes_at_once(server, listed, props, kind, concurrency):
    p = identify(server, listed, props)
    assert (p.kind, p.concurrency) == (kind, concurrency)


def test_identity_names_the_models_or_else_where_the_server_runs():
    assert UpstreamProfile("vllm", ("b", "a"), 16).identity == "vllm:a,b"
    assert UpstreamProfile("mlx_lm", (), 4, where="mac1/http://127.0.0.1:8080").identity == \
        "mlx_lm@mac1/http://127.0.0.1:8080"
    assert identify(None, models(("x", "me"))).top_logprobs_max == 20
    assert identify("BaseHTTP/0.6", None).top_logprobs_max == 11


def test_a_server_without_health_is_healthy_and_ready_when_it_lists_its_models(scripted, start_proxy):
    scripted.health_status = 404  # llama-cpp-python's server
    scripted.owned_by = "me"
    proxy = start_proxy(scripted.url)
    health = httpx.get(proxy.url + "/health").json()
    assert health["status"] == "healthy" and health["upstream"]["reachable"] is True
    assert health["upstream"]["profile"] == {"kind": "llama-cpp-python", "models": ["scripted-model"], "concurrency": 1}
    assert httpx.get(proxy.url + "/health/ready").status_code == 200


def test_an_upstream_that_cuts_streams_under_concurrency_gets_one_at_a_time(scripted, start_proxy):
    """llama-cpp-python's server interrupts a running stream when another request arrives: four
    concurrent clients through the proxy all get their whole answer."""
    scripted.owned_by, scripted.interrupts = "me", True
    scripted.script(Script(chunks=[f"w{i} " for i in range(10)], delay=0.05))
    proxy = start_proxy(scripted.url, cache="none")

    def ask(i: int) -> httpx.Response:
        return httpx.post(proxy.url + "/v1/chat/completions", timeout=30,
                          json={"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]})

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert {a.json()["choices"][0]["message"]["content"] for a in answers} == {"".join(f"w{i} " for i in range(10))}
    assert scripted.max_active == 1


def test_two_proxies_on_one_redis_in_front_of_different_models_never_share_entries(server_loop, start_proxy,
                                                                                   redis_shared):
    """Default settings (nobody named the served model): each proxy keys by what its upstream serves."""
    ups = [ScriptedUpstream(server_loop), ScriptedUpstream(server_loop)]
    try:
        for up, model in zip(ups, ("qwen-7b", "llama-8b")):
            up.model_name = model
            up.script(Script(text=f"answer from {model}"))
        proxies = [start_proxy(up.url, cache=redis_shared.url) for up in ups]
        body = {"model": "m", "messages": [{"role": "user", "content": "the same question"}]}
        first = httpx.post(proxies[0].url + "/v1/chat/completions", json=body, timeout=30)
        second = httpx.post(proxies[1].url + "/v1/chat/completions", json=body, timeout=30)
        assert first.headers["X-Cache-Key"] != second.headers["X-Cache-Key"]
        assert second.headers["X-Cache-Status"] == "MISS"
        assert [r.json()["choices"][0]["message"]["content"] for r in (first, second)] == [
            "answer from qwen-7b", "answer from llama-8b"]
        # and a proxy in front of the same model as the first shares the first one's entry
        twin = ScriptedUpstream(server_loop)
        twin.model_name = "qwen-7b"
        same = httpx.post(start_proxy(twin.url, cache=redis_shared.url).url + "/v1/chat/completions", json=body,
                          timeout=30)
        assert same.headers["X-Cache-Status"] == "HIT" and same.headers["X-Cache-Key"] == first.headers["X-Cache-Key"]
        twin.close()
    finally:
        for up in ups:
            up.close()
