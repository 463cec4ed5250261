"""What real OpenAI-compatible servers send, replayed through the proxy on every route.

The bodies in tests/fixtures/upstreams/ were recorded from llama-cpp-python's server and
llama.cpp's llama-server, or written from vLLM's, LM Studio's and Ollama's documentation (see
its README). The scripted upstream answers with exactly those bytes; the proxy must turn them
into the same calls, text, usage and errors on chat (stream and not), Responses, Messages and a
cache hit.
"""
from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from tests.rig.request_shape import FIXTURES
from tests.rig.scripted_upstream import Script

UPSTREAMS = FIXTURES / "upstreams"
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ANTHROPIC_TOOLS = [{"name": "get_weather", "description": "Get the current weather for a city",
                    "input_schema": TOOLS[0]["function"]["parameters"]}]
QUESTION = "What is the weather in Paris? Use the get_weather tool."
# fixture -> the calls it carries (read off the recording: what the server meant to call)
TOOL_STREAMS = {
    "llama-cpp-python-0.3.36--tool-forced-stream": [("get_weather", {"city": "Paris"})],
    "documented--vllm--tool-stream": [("get_weather", {"city": "Paris"})],
    "documented--lm-studio--tool-stream": [("get_weather", {"city": "Paris"})],
    "documented--ollama--tool-stream": [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})],
}


def recorded(name: str) -> dict:
    return json.loads((UPSTREAMS / f"{name}.json").read_text())


def replay(name: str) -> Script:
    rec = recorded(name)
    return Script(status=rec["status"], raw_body=rec["body"].encode(), content_type=rec["content_type"].split(";")[0])


def recorded_text(name: str) -> str:
    """The text a recorded stream carries (its content deltas, joined)."""
    out = []
    for line in recorded(name)["body"].splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices") or ():
                out.append((choice.get("delta") or {}).get("content") or "")
    return "".join(out)


@pytest.fixture
def proxy(scripted, start_proxy):
    def start(name: str, **settings):
        scripted.script(replay(name))
        return start_proxy(scripted.url, **settings)
    return start


def openai_client(proxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)


@pytest.mark.parametrize("name", TOOL_STREAMS)
def test_chat_json_and_a_cache_hit_carry_the_upstreams_calls(proxy, name):
    p = proxy(name)
    client = openai_client(p)
    for expected_status in ("MISS", "HIT"):
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": QUESTION}], tools=TOOLS)
        assert raw.headers["X-Cache-Status"] == expected_status
        choice = raw.parse().choices[0]
        assert [(c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == TOOL_STREAMS[name]
        assert not choice.message.content  # nothing of a structured call leaks into the text
        assert choice.finish_reason == "tool_calls"


@pytest.mark.parametrize("name", TOOL_STREAMS)
def test_chat_stream_carries_each_call_whole_with_index_id_type_and_name(proxy, name):
    client = openai_client(proxy(name, cache="none"))
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": QUESTION}],
                                            tools=TOOLS, stream=True)
    calls, text, finish = {}, "", None
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for tc in delta.tool_calls or ():
            assert tc.index not in calls and tc.id and tc.type == "function" and tc.function.name  # whole, once
            calls[tc.index] = (tc.function.name, json.loads(tc.function.arguments))
        finish = chunk.choices[0].finish_reason or finish
    assert [calls[i] for i in sorted(calls)] == TOOL_STREAMS[name]
    assert text == "" and finish == "tool_calls"


@pytest.mark.parametrize("name", TOOL_STREAMS)
def test_responses_carry_the_calls_as_function_call_items(proxy, name):
    response = openai_client(proxy(name, cache="none")).responses.create(
        model="m", input=QUESTION, tools=[{"type": "function", **TOOLS[0]["function"]}])
    items = [(o.name, json.loads(o.arguments)) for o in response.output if o.type == "function_call"]
    assert items == TOOL_STREAMS[name]
    assert not any(o.type == "message" for o in response.output)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", TOOL_STREAMS)
def test_messages_carry_the_calls_as_tool_use_blocks(proxy, name, stream):
    client = anthropic.Anthropic(base_url=proxy(name, cache="none").url, api_key="x", max_retries=0)
    request = dict(model="m", max_tokens=100, tools=ANTHROPIC_TOOLS, messages=[{"role": "user", "content": QUESTION}])
    if stream:
        with client.messages.stream(**request) as s:
            message = s.get_final_message()
    else:
        message = client.messages.create(**request)
    assert [(b.name, b.input) for b in message.content if b.type == "tool_use"] == TOOL_STREAMS[name]
    assert not any(b.type == "text" for b in message.content)
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("server", ["llama-cpp-python-0.3.36", "llama-server-b1-0c1e570"])
def test_text_streams_pass_through_with_usage_reported_or_counted(proxy, server):
    name = f"{server}--text-stream-usage"
    client = openai_client(proxy(name, cache="none"))
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hello."}])
    assert out.choices[0].message.content == recorded_text(name)
    usage = out.usage.model_dump()
    if server.startswith("llama-server"):  # it reports usage: passed on as it said
        assert usage["completion_tokens"] == 12 and "estimated" not in usage
    else:  # its streams carry no usage: the proxy counts, and says so
        chunks = sum(1 for line in recorded(name)["body"].splitlines() if '"content": "' in line)
        assert usage["estimated"] is True and usage["completion_tokens"] == chunks and usage["prompt_tokens"] > 0


@pytest.mark.parametrize("server", ["llama-cpp-python-0.3.36", "llama-server-b1-0c1e570"])
def test_logprobs_pass_through(proxy, server):
    name = f"{server}--logprobs-stream"
    recorded_tokens = []
    for line in recorded(name)["body"].splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices") or ():
                recorded_tokens += [e["token"] for e in ((choice.get("logprobs") or {}).get("content") or [])]
    assert recorded_tokens
    client = openai_client(proxy(name, cache="none"))
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Say hi."}],
                                         logprobs=True, top_logprobs=2)
    assert [e.token for e in out.choices[0].logprobs.content] == recorded_tokens
    assert all(len(e.top_logprobs) == 2 for e in out.choices[0].logprobs.content)


@pytest.mark.parametrize("server", ["llama-cpp-python-0.3.36", "llama-server-b1-0c1e570"])
def test_a_prompt_longer_than_the_context_is_a_400_and_the_next_request_succeeds(scripted, start_proxy, server):
    """llama-server answers the stream with a 400; llama-cpp-python opens the stream and closes
    it empty (then answers the same request sent plainly with a 400): both become a 400 the
    client can act on, never a retried 5xx, and the connection is not reused broken."""
    too_long = [replay(f"{server}--too-long-stream")]
    if server.startswith("llama-cpp-python"):
        too_long.append(replay(f"{server}--too-long"))  # what it says when asked without a stream
    proxy = start_proxy(scripted.url, cache="none")
    long_prompt = {"model": "m", "messages": [{"role": "user", "content": "word " * 3000}]}
    for _ in range(10):
        scripted.script(*too_long, Script(text="fine"))
        r = httpx.post(proxy.url + "/v1/chat/completions", json=long_prompt, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
        assert r.headers["x-should-retry"] == "false"
        ok = httpx.post(proxy.url + "/v1/chat/completions",
                        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "fine"
    scripted.script(*too_long)
    m = httpx.post(proxy.url + "/v1/messages", json={"model": "m", "max_tokens": 5, **long_prompt}, timeout=30)
    assert m.status_code == 400
    assert m.json()["error"]["type"] == "invalid_request_error"
    assert m.json()["error"]["message"].startswith("prompt is too long")  # what Claude Code compacts on
