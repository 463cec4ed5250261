"""From raw bytes to one key: equivalent requests share it, requests that differ do not.

Each case is a transformation of a realistic anyclaude body (Claude Code's system prompt with a
billing line, 14 tools, a tool-call turn and non-ASCII text), serialized to bytes, then
parse_body + normalize_chat + cache_key, as the proxy does.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import orjson
import pytest

from proxy.cache.keys import cache_key
from proxy.normalize import normalize_chat, parse_body
from tests.test_normalize import BILLING, CFG, chat_fixture

EP = "/v1/chat/completions"


def base_body() -> dict:
    body = chat_fixture()
    body["messages"][0]["content"] = BILLING + body["messages"][0]["content"]
    body["messages"] += [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "Read", "arguments": '{"file_path":"notes.txt"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "le mot secret est « café » ✓"},
        {"role": "user", "content": "Et maintenant, résume."},
    ]
    return body


def key_of(raw: bytes) -> tuple[str, dict]:
    req = normalize_chat(parse_body(raw), CFG)
    return cache_key(EP, CFG.model_identity, req.key_material), req.upstream_body


def compact(body: dict) -> bytes:
    return orjson.dumps(body)


def edited(edit: Callable[[dict], None]) -> Callable[[dict], bytes]:
    def variant(body: dict) -> bytes:
        edit(body)
        return compact(body)
    return variant


def reversed_keys(value):
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


def as_parts(text: str) -> list[dict]:
    half = len(text) // 2
    return [{"type": "text", "text": text[:half]}, {"type": "text", "text": text[half:]}]


def _explicit_defaults(b: dict) -> None:
    b.update(top_p=1, top_k=0, min_p=0, repetition_penalty=0, presence_penalty=0.0, frequency_penalty=0,
             xtc_probability=0, xtc_threshold=0.1, seed=None, stop=None, logit_bias={})


def _parts(b: dict) -> None:
    for m in b["messages"]:
        m["content"] = as_parts(m["content"])


def _max_tokens(name: str) -> Callable[[dict], None]:
    def edit(b: dict) -> None:
        b[name] = b.pop("max_completion_tokens")
    return edit


def _set(**fields) -> Callable[[dict], None]:
    return lambda b: b.update(fields)


def _nonce(text: str) -> Callable[[dict], None]:
    def edit(b: dict) -> None:
        m = b["messages"][0]
        m["content"] = m["content"].replace(BILLING, text)
    return edit


def _arguments(args) -> Callable[[dict], None]:
    def edit(b: dict) -> None:
        b["messages"][2]["tool_calls"][0]["function"]["arguments"] = args
    return edit


EQUIVALENT: dict[str, Callable[[dict], bytes]] = {
    "indented whitespace": lambda b: json.dumps(b, indent=2).encode(),
    "\\u escapes": lambda b: json.dumps(b, ensure_ascii=True).encode(),
    "reversed key order": lambda b: compact(reversed_keys(b)),
    "content as text parts": edited(_parts),
    "explicit defaults": edited(_explicit_defaults),
    "temperature 1.0 for 1": edited(_set(temperature=1.0)),
    "max_tokens": edited(_max_tokens("max_tokens")),
    "max_output_tokens": edited(_max_tokens("max_output_tokens")),
    "model gpt-4o": edited(_set(model="gpt-4o")),
    "model claude": edited(_set(model="claude-sonnet-4-5-20250929")),
    "no model": edited(lambda b: b.pop("model")),
    "another billing nonce": edited(_nonce(BILLING.replace("4f2a9", "77e01"))),
    "no billing line": edited(_nonce("")),
    "not streamed": edited(lambda b: (b.update(stream=False), b.pop("stream_options"))),
    "transport and ignored fields": edited(_set(user="u-1", metadata={"session": "s"}, store=False,
                                                 service_tier="auto", parallel_tool_calls=True,
                                                 cache_prompt=False, stream_options={})),
    "tool_choice omitted": edited(lambda b: b.pop("tool_choice")),
    "developer role": edited(lambda b: b["messages"][0].update(role="developer")),
    "null assistant content": edited(lambda b: b["messages"][2].update(content=None)),
    "arguments spaced": edited(_arguments('{ "file_path" : "notes.txt" }')),
    "arguments as object": edited(_arguments({"file_path": "notes.txt"})),
    "arguments double-encoded": edited(_arguments(json.dumps('{"file_path": "notes.txt"}'))),
}

MUST_DIFFER: dict[str, Callable[[dict], bytes]] = {
    "temperature": edited(_set(temperature=0.7)),
    "max tokens": edited(_set(max_completion_tokens=31999)),
    "max tokens default": edited(lambda b: b.pop("max_completion_tokens")),
    "last message": edited(lambda b: b["messages"][-1].update(content="Et maintenant, résume!")),
    "one tool fewer": edited(lambda b: b["tools"].pop()),
    "tool description": edited(lambda b: b["tools"][0]["function"].update(description="Runs bash.")),
    "tool order": edited(lambda b: b["tools"].reverse()),
    "tool_choice required": edited(_set(tool_choice="required")),
    "stop": edited(_set(stop=["\n\n"])),
    "seed": edited(_set(seed=7)),
    "top_p": edited(_set(top_p=0.9)),
    "logit_bias": edited(_set(logit_bias={"7": 5})),
    "response_format": edited(_set(response_format={"type": "json_object"})),
    "chat_template_kwargs": edited(_set(chat_template_kwargs={"enable_thinking": False})),
    "unknown field": edited(_set(my_sampler_knob=3)),
    "tool call arguments": edited(_arguments('{"file_path":"other.txt"}')),
    "system text": edited(lambda b: b["messages"][0].update(content=b["messages"][0]["content"] + " ")),
}


@pytest.fixture(scope="module")
def base() -> tuple[str, dict]:
    return key_of(compact(base_body()))


@pytest.mark.parametrize("name", EQUIVALENT)
def test_equivalent_variants_give_one_canonical_request_and_one_key(name, base):
    key, upstream = key_of(EQUIVALENT[name](base_body()))
    assert upstream == base[1]
    assert key == base[0]


@pytest.mark.parametrize("name", MUST_DIFFER)
def test_differing_requests_give_different_keys(name, base):
    assert key_of(MUST_DIFFER[name](base_body()))[0] != base[0]


def test_the_must_differ_set_gives_pairwise_different_keys():
    keys = {key_of(variant(base_body()))[0] for variant in MUST_DIFFER.values()}
    assert len(keys) == len(MUST_DIFFER)


def test_namespace_splits_the_key(base):
    req = normalize_chat(parse_body(compact(base_body())), CFG)
    assert cache_key(EP, CFG.model_identity, req.key_material, "team-a") != base[0]
