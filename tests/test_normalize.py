"""normalize_chat / parse_body: each rule of the canonical request."""
from __future__ import annotations

import dataclasses

import copy

import orjson
import pytest

from proxy.config import BILLING_HEADER_RULE, Settings
from proxy.errors import ProxyError
from proxy.normalize import (UPSTREAM_SAMPLING_DEFAULTS, NormalizeConfig, VolatileRules, normalize_chat,
                             parse_body, sampling_defaults_from_server_args)
from proxy.normalize.body import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, MAX_JSON_ITEMS

from tests.rig.request_shape import FIXTURES
CFG = NormalizeConfig.from_settings(Settings())
BILLING = "x-anthropic-billing-header: cc_version=2.0.14; cc_entrypoint=cli; cch=4f2a9;\n"


def chat_fixture() -> dict:
    """anyclaude's captured chat body (Claude Code's system prompt and 14 tools), fresh each call."""
    return orjson.loads((FIXTURES / "anyclaude-chat-completions-turn1.json").read_bytes())["body"]


def chat(**fields) -> dict:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return body


def rejected(body: dict, cfg: NormalizeConfig = CFG) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        normalize_chat(body, cfg)
    assert info.value.status == 400
    return info.value


# --- parse_body ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, code", [
    (b"\xff\xfe{}", "invalid_encoding"),
    (b'{"messages": "\xe9"}', "invalid_encoding"),
    (b"", "invalid_json"),
    (b'{"a": 1', "invalid_json"),
    (b"{'a': 1}", "invalid_json"),
    (b"[1, 2]", "invalid_request"),
    (b'"text"', "invalid_request"),
    (b"null", "invalid_request"),
])
def test_parse_body_rejects_with_the_right_code(raw, code):
    with pytest.raises(ProxyError) as info:
        parse_body(raw)
    assert (info.value.code, info.value.status) == (code, 400)


def test_parse_body_returns_the_object():
    assert parse_body(b' {"a": "\\u00e9"} ') == {"a": "é"}


def _nested(depth: int) -> bytes:
    return b'{"x":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_parse_body_refuses_nesting_beyond_the_limit():
    assert parse_body(_nested(MAX_JSON_DEPTH))  # the body is level 1
    with pytest.raises(ProxyError) as info:
        parse_body(_nested(MAX_JSON_DEPTH + 1))
    assert info.value.code == "invalid_json" and f"{MAX_JSON_DEPTH} deep" in info.value.message


@pytest.mark.parametrize("raw", [
    b'{"x":[' + b",".join([b"[]"] * (MAX_JSON_CONTAINERS + 1)) + b"]}",  # arrays
    b'{"x":[' + b",".join([b"1"] * (MAX_JSON_ITEMS + 1)) + b"]}",  # items
    b'{"x":[' + b",".join([b'"a"'] * (MAX_JSON_ITEMS + 1)) + b"]}",  # items that are strings
], ids=["containers", "numbers", "strings"])
def test_parse_body_refuses_structure_beyond_the_limits(raw):
    with pytest.raises(ProxyError) as info:
        parse_body(raw)
    assert (info.value.code, info.value.status) == ("request_too_large", 413)


def test_brackets_and_commas_inside_strings_do_not_count():
    """A pasted CSV or JSON file is text: millions of commas inside strings are not items."""
    pasted = "a,b,[c],{d}\n" * (MAX_JSON_ITEMS // 2)
    escaped = 'say \\"[x, y]\\" ' * 1000  # escaped quotes: the string goes on
    raw = orjson.dumps({"messages": [{"role": "user", "content": pasted}, {"role": "user", "content": escaped},
                                     {"role": "user", "content": "[]," * 100}]})
    assert raw.count(b",") > MAX_JSON_ITEMS
    assert parse_body(raw)["messages"][0]["content"] == pasted
    assert parse_body(bytearray(raw))["messages"][1]["content"] == escaped  # big bodies arrive as bytearrays


# --- model, stream, transport ----------------------------------------------------------------------

@pytest.mark.parametrize("model", ["current-model", "gpt-4o", "claude-sonnet-4-5", "/models/x", None])
def test_any_client_model_is_sent_as_the_upstream_model_and_kept_out_of_the_key(model):
    cfg = NormalizeConfig(upstream_model="default_model", default_max_tokens=100, model_identity="m@1")
    req = normalize_chat(chat(model=model), cfg)
    assert req.upstream_body["model"] == "default_model"
    assert "model" not in req.key_material


def test_model_of_the_wrong_type_is_a_400_naming_it():
    assert rejected(chat(model=3)).param == "model"


@pytest.mark.parametrize("stream, options, include_usage", [
    (None, None, False), (False, None, False), (True, None, False),
    (True, {}, False), (True, {"include_usage": False}, False), (True, {"include_usage": True}, True),
])
def test_upstream_is_always_streamed_with_usage(stream, options, include_usage):
    req = normalize_chat(chat(stream=stream, stream_options=options), CFG)
    assert req.upstream_body["stream"] is True
    assert req.upstream_body["stream_options"] == {"include_usage": True}
    assert req.client_stream is bool(stream)
    assert req.include_usage is include_usage
    assert not {"stream", "stream_options"} & req.key_material.keys()


@pytest.mark.parametrize("fields, param", [
    ({"stream": "yes"}, "stream"),
    ({"stream_options": []}, "stream_options"),
    ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
])
def test_transport_fields_of_the_wrong_type_are_400s(fields, param):
    assert rejected(chat(**fields)).param == param


def test_ignored_fields_are_dropped_and_unknown_fields_kept():
    dropped = {"parallel_tool_calls": False, "cache_prompt": True, "store": True, "service_tier": "auto",
               "user": "u1", "metadata": {"a": "b"}, "draft_model": "x", "adapters": "/a"}
    req = normalize_chat(chat(**dropped, my_knob=[1, 2], response_format={"type": "json_object"}), CFG)
    for body in (req.upstream_body, req.key_material):
        assert not dropped.keys() & body.keys()
        assert body["my_knob"] == [1, 2]
        assert body["response_format"] == {"type": "json_object"}


# --- max tokens and sampling --------------------------------------------------------------------

@pytest.mark.parametrize("fields, expected", [
    ({}, 8192),
    ({"max_tokens": 100}, 100),
    ({"max_completion_tokens": 100}, 100),
    ({"max_output_tokens": 100}, 100),
    ({"max_tokens": 100.0}, 100),
    ({"max_completion_tokens": 7, "max_tokens": 9}, 7),  # the upstream's own precedence
    ({"max_completion_tokens": None, "max_tokens": 9}, 9),
])
def test_max_tokens_become_one_value(fields, expected):
    req = normalize_chat(chat(**fields), CFG)
    assert req.max_tokens == expected
    assert req.upstream_body["max_tokens"] == expected
    assert not {"max_completion_tokens", "max_output_tokens"} & req.upstream_body.keys()


@pytest.mark.parametrize("value", [0, -5, 1.5, True, "100", [100], 2**70])
def test_bad_max_tokens_are_400s(value):
    assert rejected(chat(max_completion_tokens=value)).param == "max_completion_tokens"


def test_sampling_defaults_are_explicit_and_floats_are_floats():
    req = normalize_chat(chat(temperature=1, top_k=40.0, presence_penalty=-0.0), CFG)
    body = req.upstream_body
    for name, default in UPSTREAM_SAMPLING_DEFAULTS.items():
        assert name in body
    assert body["temperature"] == 1.0 and type(body["temperature"]) is float
    assert body["top_k"] == 40 and type(body["top_k"]) is int
    assert orjson.dumps(body["presence_penalty"]) == b"0.0"
    assert type(body["xtc_probability"]) is float  # the upstream rejects an int here


@pytest.mark.parametrize("fields, param", [
    ({"temperature": -1}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"top_k": 2.5}, "top_k"),
    ({"min_p": "0.1"}, "min_p"),
    ({"temperature": float("nan")}, "temperature"),
    ({"seed": 1.5}, "seed"),
    ({"seed": 2.0**64}, "seed"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"logprobs": 1}, "logprobs"),
    ({"tool_choice": 3}, "tool_choice"),
    ({"response_format": "json"}, "response_format"),
    ({"chat_template_kwargs": []}, "chat_template_kwargs"),
    ({"stop": 5}, "stop"),
    ({"stop": ["a", 5]}, "stop"),
    ({"logit_bias": []}, "logit_bias"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"logit_bias": {"5": "x"}}, "logit_bias"),
])
def test_known_fields_of_the_wrong_type_or_range_are_400s_naming_them(fields, param):
    assert rejected(chat(**fields)).param == param


def test_top_logprobs_limit_is_the_served_upstreams():
    mlx = dataclasses.replace(CFG, top_logprobs_max=11)
    assert normalize_chat(chat(logprobs=True, top_logprobs=15), CFG).upstream_body["top_logprobs"] == 15
    assert rejected(chat(logprobs=True, top_logprobs=12), mlx).param == "top_logprobs"
    assert normalize_chat(chat(top_logprobs=11), mlx).upstream_body["top_logprobs"] == 11


def test_more_than_one_choice_is_refused_clearly():
    err = rejected(chat(n=2))
    assert (err.code, err.param) == ("unsupported_content", "n") and "one choice per request" in err.message
    assert normalize_chat(chat(n=1), CFG).upstream_body.get("n") == 1


def test_null_known_fields_are_absent():
    explicit_null = normalize_chat(chat(seed=None, stop=None, logit_bias=None, temperature=None), CFG)
    assert explicit_null.key_material == normalize_chat(chat(), CFG).key_material


@pytest.mark.parametrize("stop, expected", [("x", ["x"]), (["x", "y"], ["x", "y"]), ("", None), ([], None)])
def test_stop_is_a_list(stop, expected):
    assert normalize_chat(chat(stop=stop), CFG).upstream_body.get("stop") == expected


def test_logit_bias_keys_and_values_are_canonical():
    req = normalize_chat(chat(logit_bias={"007": 1, "8": -100.0}), CFG)
    assert req.upstream_body["logit_bias"] == {"7": 1.0, "8": -100.0}


def test_tool_choice_auto_is_the_default():
    assert "tool_choice" not in normalize_chat(chat(tool_choice="auto"), CFG).upstream_body
    assert normalize_chat(chat(tool_choice="required"), CFG).upstream_body["tool_choice"] == "required"


# --- messages ----------------------------------------------------------------------------------

def test_developer_becomes_system_and_unknown_roles_are_400s():
    req = normalize_chat({"messages": [{"role": "developer", "content": "rules"},
                                       {"role": "user", "content": "hi"}]}, CFG)
    assert req.upstream_body["messages"][0] == {"role": "system", "content": "rules"}
    assert rejected(chat(messages=[{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}])
                    ).param == "messages[1].role"
    assert rejected(chat(messages=[{"content": "a"}])).param == "messages[0].role"


@pytest.mark.parametrize("messages", [None, [], {}, "hi", [["user", "hi"]]])
def test_messages_must_be_a_non_empty_list_of_objects(messages):
    assert rejected({"messages": messages}).param.startswith("messages")


def test_text_parts_become_one_string_and_null_content_empty():
    req = normalize_chat({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": None},
        {"role": "user"},
    ]}, CFG)
    assert [m["content"] for m in req.upstream_body["messages"]] == ["ab", "", ""]


def test_non_text_parts_are_400_unsupported_content_naming_the_part():
    err = rejected(chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:x"}}]}]))
    assert (err.code, err.param) == ("unsupported_content", "messages[0].content[1]")
    assert "text" in err.message
    err = rejected(chat(messages=[{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]))
    assert (err.code, err.param) == ("unsupported_content", "messages[0].content[0]")


def assistant_call(arguments) -> dict:
    return {"messages": [{"role": "user", "content": "go"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "call_1", "type": "function",
                              "function": {"name": "Read", "arguments": arguments}}]},
                         {"role": "tool", "tool_call_id": "call_1", "content": "ok"}]}


@pytest.mark.parametrize("arguments", [
    '{"path": "a.txt"}', '{ "path" : "a.txt" }\n', '{"path": "\\u0061.txt"}', {"path": "a.txt"},
    orjson.dumps('{"path": "a.txt"}').decode(),  # double-encoded by the client
])
def test_tool_call_arguments_become_one_json_object_string(arguments):
    req = normalize_chat(assistant_call(arguments), CFG)
    message = req.upstream_body["messages"][1]
    assert message["content"] == ""
    assert message["tool_calls"][0]["function"]["arguments"] == '{"path":"a.txt"}'


@pytest.mark.parametrize("arguments", ["", "   ", None])
def test_empty_tool_call_arguments_become_an_empty_object(arguments):
    req = normalize_chat(assistant_call(arguments), CFG)
    assert req.upstream_body["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize("arguments", ['{"path": ', "[1, 2]", "42", '"just text"', 3, ["a"]])
def test_unrepairable_tool_call_arguments_are_400s_naming_the_message(arguments):
    err = rejected(assistant_call(arguments))
    assert err.param == "messages[1].tool_calls[0].function.arguments"
    assert "messages[1]" in err.message


@pytest.mark.parametrize("call, param", [
    ("x", "messages[1].tool_calls[0]"),
    ({"function": "Read"}, "messages[1].tool_calls[0].function"),
    ({"function": {"arguments": "{}"}}, "messages[1].tool_calls[0].function.name"),
    ({"id": 5, "function": {"name": "Read", "arguments": "{}"}}, "messages[1].tool_calls[0].id"),
])
def test_malformed_tool_calls_are_400s(call, param):
    body = assistant_call("{}")
    body["messages"][1]["tool_calls"] = [call]
    assert rejected(body).param == param


def test_empty_or_null_tool_calls_are_no_tool_calls():
    plain = normalize_chat(chat(messages=[{"role": "assistant", "content": "x"}]), CFG).key_material
    for calls in ([], None):
        body = chat(messages=[{"role": "assistant", "content": "x", "tool_calls": calls}])
        assert normalize_chat(body, CFG).key_material == plain


def test_canonical_messages_are_passed_through_and_the_input_is_never_mutated():
    body = chat_fixture()
    body["messages"].append({"role": "developer", "content": [{"type": "text", "text": "x"}]})
    before = copy.deepcopy(body)
    req = normalize_chat(body, CFG)
    assert body == before
    assert req.upstream_body["messages"][0] is body["messages"][0]  # no copy of a canonical message
    assert req.upstream_body["messages"][-1] is not body["messages"][-1]


# --- tools ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tools, param", [
    ({"name": "x"}, "tools"),
    (["x"], "tools[0]"),
    ([{"type": "function", "function": {"description": "no name"}}], "tools[0].function.name"),
    ([{"type": "function", "function": {"name": ""}}], "tools[0].function.name"),
    ([{"type": "function"}], "tools[0].function"),
    ([{"type": "function", "function": {"name": "a", "parameters": "{}"}}], "tools[0].function.parameters"),
    ([{"type": "web_search"}], "tools[0].type"),
])
def test_malformed_tools_are_400s(tools, param):
    assert rejected(chat(tools=tools)).param == param


def test_declared_tools_are_returned_in_order_and_empty_tools_are_none():
    body = chat_fixture()
    req = normalize_chat(body, CFG)
    assert [t["function"]["name"] for t in req.tools] == [t["function"]["name"] for t in body["tools"]]
    assert normalize_chat(chat(tools=[]), CFG).tools is None
    assert "tools" not in normalize_chat(chat(tools=[]), CFG).upstream_body


# --- volatile rules ---------------------------------------------------------------------------------

def test_billing_header_is_removed_from_system_text_only_and_reported():
    body = chat_fixture()
    system = body["messages"][0]["content"]
    body["messages"][0]["content"] = BILLING + system
    body["messages"][1]["content"] = BILLING + "question"
    req = normalize_chat(body, CFG)
    assert req.upstream_body["messages"][0]["content"] == system
    assert req.upstream_body["messages"][1]["content"] == BILLING + "question"
    assert req.rules_fired == (BILLING_HEADER_RULE,)
    assert normalize_chat(chat_fixture(), CFG).rules_fired == ()


def test_rule_hits_are_counted_by_the_caller_and_listed():
    rules = VolatileRules([BILLING_HEADER_RULE, r"(?m)^session: \d+\n"])
    cfg = NormalizeConfig(upstream_model="m", default_max_tokens=10, model_identity="m", volatile_rules=rules)
    body = {"messages": [{"role": "system", "content": BILLING + "session: 42\nbe brief"},
                         {"role": "user", "content": "hi"}]}
    req = normalize_chat(body, cfg)
    assert req.upstream_body["messages"][0]["content"] == "be brief"
    assert rules.to_json() == [{"pattern": BILLING_HEADER_RULE, "hits": 0},
                               {"pattern": r"(?m)^session: \d+\n", "hits": 0}]  # pure: no counting
    rules.count(req.rules_fired)
    rules.count(normalize_chat(chat(), cfg).rules_fired)
    assert [r["hits"] for r in rules.to_json()] == [1, 1]


def test_invalid_rule_fails_at_start_up():
    with pytest.raises(ValueError, match="not a valid regex"):
        VolatileRules(["(unclosed"])


# --- config and completions -------------------------------------------------------------------------

def test_config_from_settings():
    cfg = NormalizeConfig.from_settings(Settings(upstream_model="default_model", served_model="qwen",
                                                 model_fingerprint="abc", default_max_tokens=77))
    assert (cfg.upstream_model, cfg.model_identity) == ("default_model", "qwen@abc")
    assert cfg.default_max_tokens == 77
    assert cfg.volatile_rules.patterns == (BILLING_HEADER_RULE,)


def test_non_canonical_sampling_default_fails_at_start_up():
    with pytest.raises(ValueError):
        NormalizeConfig(upstream_model="m", default_max_tokens=1, model_identity="m",
                        sampling_defaults={"temperature": 1})


def test_body_that_is_not_an_object_is_a_400():
    assert rejected([1]).code == "invalid_request"  # type: ignore[arg-type]


def test_upstream_started_with_other_sampling_defaults():
    cfg = NormalizeConfig.from_settings(Settings(sampling_defaults=("temperature=0.7", "top_k = 40")))
    body = normalize_chat(chat(), cfg).upstream_body
    assert (body["temperature"], body["top_k"], body["top_p"]) == (0.7, 40, 1.0)
    assert type(body["top_k"]) is int
    assert normalize_chat(chat(temperature=0), cfg).upstream_body["temperature"] == 0.0


@pytest.mark.parametrize("item", ["temperature", "temp=0.7", "top_p=2", "top_k=1.5", "min_p=x", "seed=1"])
def test_bad_sampling_default_overrides_fail_at_start_up(item):
    with pytest.raises(ValueError, match="sampling default"):
        NormalizeConfig.from_settings(Settings(sampling_defaults=(item,)))


def test_sampling_defaults_from_server_args():
    args = ["--model", "m", "--temp", "0.6", "--top-p=0.95", "--max-tokens", "9", "--top-k", "20",
            "--temp", "0.5"]
    assert sampling_defaults_from_server_args(args) == ("temperature=0.5", "top_p=0.95", "top_k=20")
    cfg = NormalizeConfig.from_settings(Settings(sampling_defaults=sampling_defaults_from_server_args(args)))
    assert normalize_chat(chat(), cfg).upstream_body["top_p"] == 0.95
