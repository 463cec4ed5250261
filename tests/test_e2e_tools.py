"""Tool calls end to end: the real mlx_lm.server serving the deterministic tool-calling model.

The `raw` variant has no tool parser, so the server returns every call as text and only the
proxy's extraction can turn it into tool_calls; the `json` variant's calls are parsed by the
server itself and must pass through normalized. Clients are the real SDKs.
"""
from __future__ import annotations

import json

import anthropic
import openai
import pytest
from tests.rig.request_shape import FIXTURES

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": SCHEMA}},
    {"type": "function", "function": {"name": "Read", "description": "Read a file",
                                      "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "list_files", "description": "List files",
                                      "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
]
EXPECTED = {
    "weather_paris": ("", [("get_weather", {"city": "Paris"})]),
    "two_calls": ("", [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]),
    "text_then_call": ("Let me check that.", [("get_weather", {"city": "Rome"})]),
    "read_readme": ("", [("Read", {"file_path": "README.md"})]),
    "bare_json": ("", [("list_files", {"path": "."})]),
}


def calls_of(message) -> list[tuple[str, dict]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls or []]


# json_tools parses only <tool_call> blocks: a bare JSON reply is the raw variant's case alone.
VARIANT_CASES = [(v, c) for v in ("raw", "json") for c in EXPECTED if not (v == "json" and c == "bare_json")]


@pytest.mark.parametrize("variant,case", VARIANT_CASES)
def test_tool_calls_non_stream_and_stream(mlx_tool_server, start_proxy, variant, case):
    server = mlx_tool_server(variant)
    proxy = start_proxy(server.url, cache="none")
    trigger = server.model.case(case).trigger
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    messages = [{"role": "user", "content": f"Please {trigger} now."}]
    content, calls = EXPECTED[case]

    out = client.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS, max_tokens=200)
    choice = out.choices[0]
    assert calls_of(choice.message) == calls
    assert choice.message.content == (content or None)  # no stray whitespace around the calls
    assert choice.finish_reason == "tool_calls"
    assert all(c.id and c.type == "function" for c in choice.message.tool_calls)

    stream = client.chat.completions.create(model="m", messages=messages, tools=CHAT_TOOLS, max_tokens=200, stream=True)
    text, streamed, finish = "", [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        assert delta.content != ""  # never an empty content delta (the AI SDK re-sends on it)
        text += delta.content or ""
        for tc in delta.tool_calls or []:
            # each call arrives whole in one delta, as the Vercel AI SDK needs
            assert tc.id and tc.type == "function" and tc.function.name
            streamed.append((tc.function.name, json.loads(tc.function.arguments)))
        finish = chunk.choices[0].finish_reason or finish
    assert streamed == calls and text == content and finish == "tool_calls"


def test_undeclared_tool_stays_text(mlx_tool_server, start_proxy):
    server = mlx_tool_server("raw")
    proxy = start_proxy(server.url, cache="none")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    only_read = [t for t in CHAT_TOOLS if t["function"]["name"] == "Read"]
    out = client.chat.completions.create(model="m", tools=only_read, max_tokens=200,
                                         messages=[{"role": "user", "content": "weather in paris"}])
    assert out.choices[0].message.tool_calls is None
    assert out.choices[0].message.content == server.model.case("weather_paris").reply
    assert out.choices[0].finish_reason == "stop"


def test_tool_round_trip_over_anthropic_messages(mlx_tool_server, start_proxy):
    server = mlx_tool_server("raw")
    proxy = start_proxy(server.url)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x")
    tools = [{"name": "get_weather", "description": "Weather for a city", "input_schema": SCHEMA}]
    history = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model="claude-local", max_tokens=200, tools=tools, messages=history)
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    history += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 22C"}]}]
    with client.messages.stream(model="claude-local", max_tokens=200, tools=tools, messages=history) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == server.model.case("tool_result").reply


def test_tool_round_trip_over_openai_responses(mlx_tool_server, start_proxy):
    server = mlx_tool_server("raw")
    proxy = start_proxy(server.url)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    tools = [{"type": "function", "name": "get_weather", "description": "Weather", "parameters": SCHEMA, "strict": False}]
    inputs: list = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.responses.create(model="m", input=inputs, tools=tools, max_output_tokens=200)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    inputs += [{"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 22C"}]
    with client.responses.stream(model="m", input=inputs, tools=tools, max_output_tokens=200) as stream:
        final = stream.get_final_response()
    assert final.output_text == server.model.case("tool_result").reply


def test_captured_anyclaude_bodies_are_served_by_the_real_server(mlx_tool_server, start_proxy):
    """Request bodies of the shape anyclaude sends (chat from the anyclaude-local fork, Responses
    from anyclaude 1.2.1: a system prompt of Claude Code's size, its 14 tools, a tool round trip) go
    through the proxy to the stock server and come back as valid streams."""

    import httpx

    from tests.rig.event_checkers import check_responses_stream, parse_sse
    server = mlx_tool_server("raw")
    proxy = start_proxy(server.url)
    responses = json.loads((FIXTURES / "anyclaude-responses-turn2.json").read_text())["body"]
    raw = httpx.post(proxy.url + "/v1/responses", json=responses, timeout=120).content
    final = check_responses_stream(parse_sse(raw))
    assert final is not None
    # the last input item is a tool result: the fixture model answers its tool-result reply
    assert server.model.case("tool_result").reply in raw.decode()
    chat = json.loads((FIXTURES / "anyclaude-chat-completions-turn1.json").read_text())["body"]
    r = httpx.post(proxy.url + "/v1/chat/completions", json=chat, timeout=120)
    data = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert r.status_code == 200 and data[-1] == "[DONE]"
    text = "".join((json.loads(d)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for d in data[:-1])
    assert text == server.model.case("fallback").reply
