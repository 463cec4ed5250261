"""cache_key: canonical JSON, prefix, and what takes part in the hash."""
from __future__ import annotations

import re

import orjson
import pytest

from proxy.cache.keys import (KEY_PREFIX, canonical_json, cache_key, check_namespace, model_identity)
from proxy.errors import ProxyError

MATERIAL = {"messages": [{"role": "user", "content": "héllo"}], "temperature": 0.5, "max_tokens": 10}
EP = "/v1/chat/completions"


def test_key_shape():
    key = cache_key(EP, "m", MATERIAL)
    assert KEY_PREFIX == "mlxproxy:v1:"
    assert re.fullmatch(r"mlxproxy:v1:[0-9a-f]{64}", key)
    assert re.fullmatch(r"mlxproxy:v1:team-a:[0-9a-f]{64}", cache_key(EP, "m", MATERIAL, "team-a"))


def test_keys_stay_what_they_were():
    """Golden keys: a change of the recipe makes every stored entry of every team unreachable,
    so it must be deliberate (bump the version in KEY_PREFIX) and show here."""
    assert cache_key(EP, "m", MATERIAL) == KEY_PREFIX + "6d9a2fad43b588706d451659d6c6d3db4be36996c3720c0d820247482a918f22"
    assert cache_key(EP, "m", MATERIAL, "team-a") == (
        KEY_PREFIX + "team-a:cf8a53689de8454e10ae3f3c28f42ce857214daffe647db1bc0c0bc07e0c17a4")


def test_canonical_json_sorts_keys_only_and_writes_escapes_and_floats_one_way():
    escaped = orjson.loads(b'{"b": [3, 1, 2], "a": "\\u00e9\\/"}')
    assert canonical_json(escaped) == '{"a":"é/","b":[3,1,2]}'.encode()
    floats = orjson.loads(b'{"x": 1e2, "y": 0.1, "z": 1.0E-7}')
    assert canonical_json(floats) == b'{"x":100.0,"y":0.1,"z":1e-7}'
    nested = {"z": {"b": 1, "a": 2}, "a": [{"d": 0, "c": 1}]}
    assert canonical_json(nested) == b'{"a":[{"c":1,"d":0}],"z":{"a":2,"b":1}}'


def test_every_input_of_the_key_splits_it():
    base = cache_key(EP, "m", MATERIAL)
    others = [
        cache_key("/v1/completions", "m", MATERIAL),
        cache_key(EP, "m@fingerprint", MATERIAL),
        cache_key(EP, "m", MATERIAL, "ns"),
        cache_key(EP, "m", {**MATERIAL, "temperature": 0.6}),
        cache_key(EP, "m", {**MATERIAL, "messages": list(reversed(MATERIAL["messages"] * 2))[:1] + [{}]}),
    ]
    assert len({base, *others}) == 1 + len(others)


def test_key_fields_cannot_run_into_each_other():
    assert cache_key("ab", "c", {}) != cache_key("a", "bc", {})


def test_unencodable_material_is_a_400_not_a_crash():
    deep: list = []
    node = deep
    for _ in range(300):  # orjson parses 1024 levels but writes only 254
        node.append([])
        node = node[0]
    with pytest.raises(ProxyError) as info:
        cache_key(EP, "m", {"x": deep})
    assert info.value.status == 400
    with pytest.raises(ProxyError):
        cache_key(EP, "m", {"seed": 2**70})  # a translator's dict can hold what JSON parsing cannot


def test_model_identity():
    assert model_identity("qwen", "") == "qwen"
    assert model_identity("qwen", "ab12") == "qwen@ab12"


@pytest.mark.parametrize("value", ["", "a:b", "x" * 65, "spa ce", "é"])
def test_bad_namespaces_are_400s_naming_the_header(value):
    with pytest.raises(ProxyError) as info:
        check_namespace(value)
    assert (info.value.status, info.value.param) == (400, "X-Cache-Namespace")


def test_good_namespace_passes():
    assert check_namespace("team_a.v2-1") == "team_a.v2-1"
