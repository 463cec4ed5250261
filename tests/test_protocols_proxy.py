"""/v1/responses and /v1/messages through the proxy, with the real SDKs as clients."""
from __future__ import annotations

import json

import anthropic
import httpx
import openai

from launcher.cli import free_port
from tests.rig.event_checkers import check_messages_stream, check_responses_stream, parse_sse
from tests.rig.scripted_upstream import Script

WEATHER_TOOL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_openai_responses_text_stream_and_not(scripted, start_proxy):
    scripted.script(Script(text="Responses work."))
    proxy = start_proxy(scripted.url)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    out = client.responses.create(model="gpt-4.1", input="hello", max_output_tokens=100)
    assert out.output_text == "Responses work." and out.status == "completed"
    assert out.usage.input_tokens == 11
    with client.responses.stream(model="gpt-4.1", input="hello again") as stream:
        final = stream.get_final_response()
    assert final.output_text == "Responses work."


def test_openai_responses_tool_call(scripted, start_proxy):
    scripted.script(Script(text=WEATHER_TOOL_TEXT))
    proxy = start_proxy(scripted.url)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x")
    tools = [{"type": "function", "name": "get_weather", "parameters": SCHEMA, "strict": False}]
    out = client.responses.create(model="m", input="weather in paris?", tools=tools)
    calls = [item for item in out.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Paris"}
    raw = httpx.post(proxy.url + "/v1/responses", json={"model": "m", "input": "weather in paris?",
                                                         "tools": tools, "stream": True}).content
    result = check_responses_stream(parse_sse(raw))
    assert result is not None


def test_anthropic_messages_tool_use_stream_and_not(scripted, start_proxy):
    scripted.script(Script(text="Checking. " + WEATHER_TOOL_TEXT))
    proxy = start_proxy(scripted.url)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x")
    tools = [{"name": "get_weather", "description": "weather", "input_schema": SCHEMA}]
    msg = client.messages.create(model="claude-local", max_tokens=200, tools=tools,
                                 messages=[{"role": "user", "content": "weather in paris?"}])
    assert msg.stop_reason == "tool_use"
    kinds = [b.type for b in msg.content]
    assert kinds == ["text", "tool_use"] and msg.content[1].input == {"city": "Paris"}
    assert msg.content[1].id.startswith("toolu_")
    with client.messages.stream(model="claude-x", max_tokens=200, tools=tools,
                                messages=[{"role": "user", "content": "weather in paris?"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[1].input == {"city": "Paris"}
    raw = httpx.post(proxy.url + "/v1/messages", json={"model": "c", "max_tokens": 200, "stream": True, "tools": tools,
                                                        "messages": [{"role": "user", "content": "weather in paris?"}]}).content
    check_messages_stream(parse_sse(raw))
    assert scripted.chat_calls == 1  # all three were the same request: one generation


def test_one_conversation_in_three_protocols_is_one_generation(scripted, start_proxy):
    scripted.script(Script(text="Same answer everywhere."))
    proxy = start_proxy(scripted.url)
    chat = httpx.post(proxy.url + "/v1/chat/completions", json={
        "model": "a", "max_tokens": 300, "messages": [{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "Say something."}]})
    resp = httpx.post(proxy.url + "/v1/responses", json={
        "model": "b", "max_output_tokens": 300, "instructions": "Be brief.", "input": "Say something."})
    msg = httpx.post(proxy.url + "/v1/messages", json={
        "model": "c", "max_tokens": 300, "system": "Be brief.", "messages": [{"role": "user", "content": "Say something."}]})
    assert [r.headers["X-Cache-Status"] for r in (chat, resp, msg)] == ["MISS", "HIT", "HIT"]
    assert resp.json()["output"][0]["content"][0]["text"] == "Same answer everywhere."
    assert msg.json()["content"][0]["text"] == "Same answer everywhere."
    assert scripted.chat_calls == 1


def test_anthropic_errors_have_anthropic_shape(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    r = httpx.post(proxy.url + "/v1/messages", json={"model": "c", "max_tokens": 10, "messages": [
        {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                 "data": "AAAA"}}]}]})
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "image" in body["error"]["message"]
    bad_json = httpx.post(proxy.url + "/v1/messages", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and bad_json.json()["type"] == "error"
    assert scripted.chat_calls == 0


def test_claude_code_probes_are_answered_locally(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    assert httpx.head(proxy.url + "/").status_code == 200
    assert httpx.get(proxy.url + "/").json()["status"] == "ok"
    assert scripted.received == []


def test_count_tokens_estimates_without_a_tokenizer(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="x")
    counted = client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "hello " * 100}])
    assert 100 <= counted.input_tokens <= 400
    raw = httpx.post(proxy.url + "/v1/messages/count_tokens",
                     json={"model": "c", "messages": [{"role": "user", "content": "hi"}]})
    assert raw.headers["X-Token-Count"] == "estimate"
    assert scripted.received == []


def test_waiting_streams_get_keepalives_in_their_own_protocol(scripted, start_proxy):
    scripted.script(Script(text="late", first_delay=1.0))
    proxy = start_proxy(scripted.url, keepalive_interval=0.2, cache="none")
    messages = httpx.post(proxy.url + "/v1/messages", json={
        "model": "c", "max_tokens": 20, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).text
    assert messages.count("event: ping") >= 3  # Anthropic clients expect ping events
    check_messages_stream(parse_sse(messages.encode()))
    responses = httpx.post(proxy.url + "/v1/responses", json={"model": "m", "input": "hi", "stream": True}).text
    assert responses.count(": keep-alive") >= 3  # an SSE comment: the Responses event list stays valid
    check_responses_stream(parse_sse(responses.encode()))


def test_one_error_shape_per_path_for_every_route_when_the_upstream_is_down(start_proxy):
    """One rule decides an error's shape, whichever code raised it: everything under
    /v1/messages (forwarded routes too) answers in Anthropic's shape, the rest in OpenAI's."""
    proxy = start_proxy(f"http://127.0.0.1:{free_port()}", served_model="m")  # nothing listens there
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    answers = {
        "/v1/messages": httpx.post(proxy.url + "/v1/messages", json=chat),
        "/v1/messages/batches": httpx.post(proxy.url + "/v1/messages/batches", json={"requests": []}),
        "/v1/chat/completions": httpx.post(proxy.url + "/v1/chat/completions", json=chat),
        "/v1/embeddings": httpx.post(proxy.url + "/v1/embeddings", json={"input": "x"}),
    }
    for path, r in answers.items():
        assert r.status_code == 502, (path, r.text)
        body = r.json()
        if path.startswith("/v1/messages"):
            assert body["type"] == "error" and body["error"]["type"] == "api_error", (path, body)
        else:
            assert body["error"]["code"] == "upstream_unreachable", (path, body)
