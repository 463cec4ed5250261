"""Tools for a model whose chat template drops them, and reasoning a template opens: what the
proxy learns from the served template, and what it does about it."""
from __future__ import annotations

import json

import httpx
import pytest
from transformers import AutoTokenizer

from launcher.smollm2 import smollm2_path
from proxy.completion import TextDelta, ToolCallDelta
from proxy.normalize import NormalizeConfig, normalize_chat
from proxy.normalize.tool_prompt import with_tool_prompt
from proxy.toolcalls import ToolCallScanner, extract
from proxy.upstream.template import learn

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CFG = NormalizeConfig(upstream_model="default_model", default_max_tokens=64, model_identity="m")


def tokenizer(path) -> object:
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def test_smollm2_drops_tools_and_tiny_random_renders_them(tiny_model_path):
    assert learn(tokenizer(smollm2_path())).renders_tools is False  # a real template that ignores them
    assert learn(tokenizer(tiny_model_path)).renders_tools is True


def test_a_template_that_prefills_think_is_seen(tiny_model_path):
    tok = tokenizer(tiny_model_path)
    tok.chat_template = tok.chat_template.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'")
    facts = learn(tok)
    assert facts.opens_reasoning is True and learn(tokenizer(tiny_model_path)).opens_reasoning is False


def test_the_tool_prompt_goes_into_the_system_message_and_history_is_written_in_its_format():
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "rain"},
    ]
    out = with_tool_prompt(history, [WEATHER])
    assert out[0]["content"].startswith("Be brief.\n\n# Tools\n")
    assert '{"name":"get_weather","description":"Weather for a city","parameters":' in out[0]["content"]
    assert out[2] == {"role": "assistant", "content": 'Checking.\n{"tool_call":{"name":"get_weather","arguments":{"city":"Oslo"}}}'}
    assert out[3] == {"role": "user", "content": '{"tool_result":{"tool_call_id":"c1","content":"rain"}}'}
    assert history[2]["tool_calls"] and len(history) == 4  # the caller's list is untouched
    assert with_tool_prompt([{"role": "user", "content": "hi"}], [WEATHER])[0]["role"] == "system"


def test_normalization_writes_the_prompt_only_when_the_template_drops_tools():
    body = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "tools": [WEATHER], "tool_choice": "auto"}
    plain = normalize_chat(body, CFG)
    assert plain.upstream_body["tools"] == [WEATHER] and not plain.tool_prompt
    injected = normalize_chat(body, NormalizeConfig(**{**CFG.__dict__, "tool_prompt": True}))
    assert injected.tool_prompt and "tools" not in injected.upstream_body
    assert injected.upstream_body["messages"][0]["role"] == "system" and injected.tools == [WEATHER]
    assert injected.key_material == plain.key_material  # the identity in the key tells them apart


def test_a_call_written_in_the_generic_format_is_read_back():
    text = '{"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}}'
    content, calls, reason = extract(text, [WEATHER], "stop")
    assert content is None and [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]


def test_a_draft_call_before_a_lone_close_tag_is_reasoning_when_the_prompt_opened_it():
    draft = ('Maybe <tool_call>{"name": "get_weather", "arguments": {"city": "X"}}</tool_call>.</think>'
             'It is sunny.')
    s = ToolCallScanner([WEATHER], in_reasoning=True)
    events = s.feed(draft) + s.finish("stop")[0]
    assert not any(isinstance(e, ToolCallDelta) for e in events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == draft
    # and a real call after the reasoning is still a call
    s = ToolCallScanner([WEATHER], in_reasoning=True)
    events = s.feed('hmm</think><tool_call>{"name": "get_weather", "arguments": {"city": "Y"}}</tool_call>')
    events += s.finish("stop")[0]
    assert [e.call.name for e in events if isinstance(e, ToolCallDelta)] == ["get_weather"]


def test_real_server_a_model_whose_template_drops_tools_calls_them_through_the_prompt(mlx_tool_server, start_proxy):
    """The tool fixture's template renders only the last message and ignores `tools`: the proxy
    sees that, writes the tools into the prompt, and reads back the call it asked for."""
    server = mlx_tool_server("raw")
    proxy = start_proxy(server.url, tokenizer_path=server.model_path, cache="none")
    r = httpx.post(proxy.url + "/v1/chat/completions", timeout=60, json={
        "model": "m", "tools": [WEATHER], "messages": [{"role": "user", "content": "What is the weather in Oslo?"}]})
    assert r.status_code == 200 and r.headers["X-Tool-Prompt"] == "injected"
    choice = r.json()["choices"][0]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in choice["message"]["tool_calls"]] \
        == [("get_weather", {"city": "Oslo"})]
    assert choice["finish_reason"] == "tool_calls" and not choice["message"]["content"]
    health = httpx.get(proxy.url + "/health").json()["template"]
    assert health == {"renders_tools": False, "opens_reasoning": False, "tool_prompt": True}


@pytest.fixture(scope="module")
def smollm2_server(mlx_server_factory):
    return mlx_server_factory(smollm2_path())


def test_real_server_smollm2_gets_the_tools_in_its_prompt(smollm2_server, start_proxy):
    """SmolLM2's real template drops tools: sent straight to mlx_lm.server they cost no prompt
    token; through the proxy they are in the prompt."""
    body = {"model": "default_model", "max_tokens": 1, "tools": [WEATHER], "messages": [{"role": "user", "content": "Hi"}]}
    direct = httpx.post(smollm2_server.url + "/v1/chat/completions", json=body, timeout=120).json()["usage"]
    no_tools = httpx.post(smollm2_server.url + "/v1/chat/completions", timeout=120,
                          json={k: v for k, v in body.items() if k != "tools"}).json()["usage"]
    assert direct["prompt_tokens"] == no_tools["prompt_tokens"]  # the template dropped them
    proxy = start_proxy(smollm2_server.url, tokenizer_path=smollm2_server.model_path, cache="none")
    through = httpx.post(proxy.url + "/v1/chat/completions", json=body, timeout=120)
    assert through.headers["X-Tool-Prompt"] == "injected"
    assert through.json()["usage"]["prompt_tokens"] > direct["prompt_tokens"] + 50
