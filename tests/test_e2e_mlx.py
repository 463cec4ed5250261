"""End to end through the REAL stock mlx_lm.server (CPU MLX) on generated tiny models."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.rig.request_shape import FIXTURES
BILLING = "x-anthropic-billing-header: cc_version=2.0.14; cc_entrypoint=cli; cch={nonce};\n"
# Fields whose presence depends on the server's build, not on the response's shape.
SERVER_SPECIFIC = {"system_fingerprint"}


def key_paths(obj, prefix="") -> set[str]:
    """The structure of a JSON value as a set of key paths (lists: their first element)."""
    if isinstance(obj, dict):
        out = set()
        for k, v in obj.items():
            if k not in SERVER_SPECIFIC:
                out |= {prefix + k} | key_paths(v, prefix + k + ".")
        return out
    if isinstance(obj, list) and obj:
        return key_paths(obj[0], prefix + "0.")
    return set()


def sse_chunks(resp: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in resp.text.splitlines()
            if line.startswith("data: {")]


def test_non_stream_and_stream_have_the_shapes_of_the_direct_server(mlx_server, start_proxy):
    proxy = start_proxy(mlx_server.url, cache="none")
    body = {"model": "default_model", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 12}
    direct = httpx.post(mlx_server.url + "/v1/chat/completions", json=body, timeout=60).json()
    proxied = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=60).json()
    assert key_paths(direct) <= key_paths(proxied)
    assert proxied["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert proxied["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"]

    sbody = {**body, "stream": True, "stream_options": {"include_usage": True}}
    direct_s = sse_chunks(httpx.post(mlx_server.url + "/v1/chat/completions", json=sbody, timeout=60))
    proxied_s = sse_chunks(httpx.post(proxy.url + "/v1/chat/completions", json=sbody, timeout=60))
    direct_text = "".join(c["choices"][0]["delta"].get("content") or "" for c in direct_s if c["choices"])
    proxied_text = "".join(c["choices"][0]["delta"].get("content") or "" for c in proxied_s if c["choices"])
    assert proxied_text == direct_text
    content_chunk = lambda chunks: next(c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content"))
    assert key_paths(content_chunk(direct_s)) - {"choices.0.delta.role"} <= key_paths(content_chunk(proxied_s))
    assert key_paths(direct_s[-1]) <= key_paths(proxied_s[-1])  # the usage chunk
    assert proxied_s[-1]["usage"]["completion_tokens"] == direct_s[-1]["usage"]["completion_tokens"]


def test_any_client_model_name_is_served_by_the_loaded_model(mlx_server, start_proxy):
    body = {"model": "current-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    # Sent as is, the stock server tries to load a model called "current-model" and fails.
    direct = httpx.post(mlx_server.url + "/v1/chat/completions", json=body, timeout=60)
    assert direct.status_code == 404
    proxy = start_proxy(mlx_server.url)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    for name in ("current-model", "gpt-4o", "claude-sonnet-4-5-20250929"):
        out = client.chat.completions.create(model=name, messages=body["messages"], max_tokens=4)
        assert out.choices[0].finish_reason in ("stop", "length")


def _claude_code_request(nonce: str, question: str) -> dict:
    body = json.loads((FIXTURES / "anyclaude-chat-completions-turn1.json").read_text())["body"]
    system = body["messages"][0]["content"]
    body["messages"] = [{"role": "system", "content": BILLING.format(nonce=nonce) + system},
                        {"role": "user", "content": question}]
    # Claude Code's real system prompt (~8 KB); its 14 tools would make a 37k-token prompt that
    # takes minutes to prefill on a CPU, and they sit after the system text anyway.
    for field in ("tools", "tool_choice", "stream_options", "parallel_tool_calls"):
        body.pop(field)
    body.update(stream=False, max_completion_tokens=2)
    return body


@pytest.mark.parametrize("rule_enabled", [True, False])
def test_billing_nonce_removal_lets_the_server_reuse_its_prompt_cache(mlx_server_factory, start_proxy, rule_enabled):
    server = mlx_server_factory()  # a private server: its KV prompt cache starts empty
    overrides = {} if rule_enabled else {"volatile_rules": ()}
    proxy = start_proxy(server.url, **overrides)
    first = httpx.post(proxy.url + "/v1/chat/completions", json=_claude_code_request("4f2a9", "Q1?"), timeout=120)
    second = httpx.post(proxy.url + "/v1/chat/completions", json=_claude_code_request("77e01", "Q2?"), timeout=120)
    assert first.status_code == second.status_code == 200
    usage = second.json()["usage"]
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    if rule_enabled:  # everything before the last user message was already in the KV cache
        assert cached > 0.9 * usage["prompt_tokens"]
    else:  # the nonce sits at the top of the system prompt: almost nothing can be reused
        assert cached < 0.1 * usage["prompt_tokens"]


def test_count_tokens_uses_the_served_models_tokenizer(mlx_server, start_proxy):
    """With the model's folder known (the launcher passes it), count_tokens is exact: the same
    number the server reports as prompt_tokens for the same conversation."""
    proxy = start_proxy(mlx_server.url, tokenizer_path=mlx_server.model_path, cache="none")
    messages = [{"role": "user", "content": "How many tokens is this sentence, exactly?"}]
    counted = httpx.post(proxy.url + "/v1/messages/count_tokens",
                         json={"model": "claude-local", "system": "Be brief.", "messages": messages}, timeout=60)
    assert counted.headers["X-Token-Count"] == "exact"
    served = httpx.post(proxy.url + "/v1/messages", json={"model": "claude-local", "system": "Be brief.",
                                                          "messages": messages, "max_tokens": 1}, timeout=60).json()
    usage = served["usage"]
    assert counted.json()["input_tokens"] == usage["input_tokens"] + usage.get("cache_read_input_tokens", 0)
