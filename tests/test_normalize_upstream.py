"""The stock mlx_lm.server serves what normalize_chat forwards, for client input it fails on raw.

Each case is ordinary client input on which mlx-lm 0.32.2, sent the raw body, answers 404
(a client model name, tool-call arguments that are not a JSON object string, a call with
`parameters` instead of `arguments`), 400 (an integer xtc_probability), or a stream that ends
without [DONE] (stream_options without include_usage). Normalized, each is a complete stream
with usage. The server runs the offline tiny random model, so its text is noise.
"""
from __future__ import annotations

import json
import urllib.request

import pytest

from proxy.config import Settings
from proxy.normalize import NormalizeConfig, normalize_chat
from tests.test_normalize_equivalence import base_body

CFG = NormalizeConfig.from_settings(Settings(default_max_tokens=3))


@pytest.fixture
def upstream(mlx_server) -> str:
    """The rig's session-wide stock mlx_lm.server (tiny random model)."""
    return mlx_server.url


def stream(url: str, path: str, body: dict) -> list[str]:
    """POST `body` and return the SSE data payloads (the stream must answer 200)."""
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200
        text = response.read().decode()
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def assert_complete_with_usage(events: list[str]) -> None:
    assert events[-1] == "[DONE]"
    assert any("usage" in json.loads(e) for e in events[:-1])


def short_chat(**fields) -> dict:
    return {"messages": [{"role": "user", "content": "hi"}], **fields}


def tool_turn(function: dict) -> dict:
    return {"messages": [{"role": "user", "content": "read it"},
                         {"role": "assistant", "content": None,
                          "tool_calls": [{"id": "c1", "type": "function", "function": function}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "done"}]}


CASES = {
    "client model name": short_chat(model="gpt-4o"),
    "integer xtc_probability": short_chat(xtc_probability=0, temperature=1),
    "stream_options without include_usage": short_chat(stream=True, stream_options={}),
    "arguments not JSON": tool_turn({"name": "Read", "arguments": ""}),
    "arguments double-encoded": tool_turn({"name": "Read", "arguments": json.dumps('{"a": 1}')}),
    "arguments as an object": tool_turn({"name": "Read", "arguments": {"a": 1}}),
    "parameters instead of arguments": tool_turn({"name": "Read", "parameters": {"a": 1}}),
    "developer role and text parts": {"messages": [
        {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]}]},
}


@pytest.mark.parametrize("name", CASES)
def test_normalized_client_input_is_served(upstream, name):
    events = stream(upstream, "/v1/chat/completions", normalize_chat(CASES[name], CFG).upstream_body)
    assert_complete_with_usage(events)


def test_anyclaude_body_with_history_is_served(upstream):
    body = base_body()  # cut down: its 37k-token prefill takes minutes on a shared CPU
    body["messages"][0]["content"] = body["messages"][0]["content"][:400]
    body["tools"] = body["tools"][:2]
    for tool in body["tools"]:
        tool["function"]["description"] = tool["function"]["description"][:200]
    events = stream(upstream, "/v1/chat/completions", normalize_chat(body, CFG).upstream_body)
    assert_complete_with_usage(events)
