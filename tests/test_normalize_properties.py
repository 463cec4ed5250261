"""Property tests: whatever a client sends, normalization answers a 400 or a canonical request.

Inputs are random JSON documents and random mutations of anyclaude's captured chat body (every
node of it is a candidate: replaced by random JSON, deleted, or given an extra field). The
pipeline is the proxy's: parse_body → normalize_chat → cache_key.
"""
from __future__ import annotations

import copy
import json

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from proxy.cache.keys import cache_key
from proxy.errors import ProxyError
from proxy.normalize import normalize_chat, parse_body
from tests.test_normalize import BILLING, CFG
from tests.test_normalize_equivalence import base_body

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=12)
                | st.sampled_from(["", "{}", "auto", "text", "user", "system", "assistant", "developer",
                                   "function", BILLING]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
KNOWN_FIELDS = ["model", "messages", "tools", "stream", "stream_options", "max_tokens",
                "max_completion_tokens", "max_output_tokens", "temperature", "top_p", "top_k", "min_p",
                "seed", "stop", "logit_bias", "logprobs", "top_logprobs", "tool_choice", "response_format",
                "chat_template_kwargs", "n", "xtc_probability", "repetition_penalty", "prompt"]


def realistic_body() -> dict:
    """The equivalence suite's body (billing line, tool-call turn, non-ASCII) plus content parts."""
    body = base_body()
    body["messages"].append({"role": "user", "content": [{"type": "text", "text": "a"},
                                                         {"type": "input_text", "text": "b"}]})
    return body


REALISTIC = realistic_body()


def paths(value, prefix=()) -> list[tuple]:
    """Every node's path, the root's children first."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(paths(v, prefix + (k,)))
    return out


PATHS = paths(REALISTIC)
# Half the mutations land outside the tool schemas, which are most of the body's nodes.
NON_SCHEMA_PATHS = [p for p in PATHS if p[0] != "tools" or len(p) <= 4]


def run_pipeline(raw: bytes, normalize=normalize_chat) -> None:
    """The proxy's path for one body; only a 400 ProxyError may escape."""
    try:
        req = normalize(parse_body(raw), CFG)
        cache_key("/v1/chat/completions", CFG.model_identity, req.key_material)
        orjson.dumps(req.upstream_body)
    except ProxyError as err:
        assert err.status == 400
        assert err.openai_body()["error"]["message"]


@PROPERTY_SETTINGS
@given(json_values)
def test_random_json_documents(doc):
    run_pipeline(json.dumps(doc).encode())


@PROPERTY_SETTINGS
@given(st.dictionaries(st.sampled_from(KNOWN_FIELDS), json_values, max_size=6))
def test_random_values_of_the_known_fields(fields):
    run_pipeline(json.dumps({"messages": [{"role": "user", "content": "hi"}], **fields}).encode())


@PROPERTY_SETTINGS
@given(st.binary(max_size=64))
def test_random_bytes(raw):
    run_pipeline(raw)


mutation = st.tuples(st.sampled_from(PATHS) | st.sampled_from(NON_SCHEMA_PATHS),
                     st.sampled_from(["replace", "delete", "add"]),
                     json_values, st.text(max_size=8))


def mutate(body: dict, path: tuple, op: str, value, new_key: str) -> dict:
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "replace":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif isinstance(parent[last], dict):
        parent[last][new_key] = value
    elif isinstance(parent[last], list):
        parent[last].append(value)
    else:
        parent[last] = value
    return body


def mutated_body(mutations: list) -> dict:
    body = copy.deepcopy(REALISTIC)
    for path, op, value, new_key in mutations:
        try:
            mutate(body, path, op, value, new_key)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed or replaced this path
    return body


@PROPERTY_SETTINGS
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_anyclaude_bodies(mutations):
    body = mutated_body(mutations)
    before = copy.deepcopy(body)
    run_pipeline(json.dumps(body).encode())
    try:
        normalize_chat(body, CFG)
    except ProxyError:
        pass
    assert body == before  # the caller's dict is never mutated


@PROPERTY_SETTINGS
@given(st.lists(mutation, min_size=1, max_size=2))
def test_normalizing_twice_changes_nothing(mutations):
    try:
        first = normalize_chat(mutated_body(mutations), CFG)
    except ProxyError:
        return
    again = normalize_chat(first.upstream_body, CFG)
    assert again.key_material == first.key_material
    assert again.upstream_body == first.upstream_body
