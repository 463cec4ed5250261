"""OpenAI Responses translator: requests -> chat, completions -> response objects and SSE.

Golden tests run on a real anyclaude 1.2.1 body; rendered output is parsed with the `openai`
SDK's own types and fed through its stream accumulator over an httpx MockTransport.
"""
from __future__ import annotations

import json

import httpx2 as httpx  # the transport library the openai and anthropic SDKs use here
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response

from proxy.completion import Completion, CompletionBuilder, Finish, ReasoningDelta, TextDelta, ToolCall, \
    ToolCallDelta, Usage
from proxy.errors import ProxyError
from proxy.translate.base import ResponseContext
from proxy.translate.responses import ResponsesStreamRenderer, render_json, to_chat
from tests.rig.event_checkers import check_responses_stream, parse_sse

from tests.rig.request_shape import FIXTURES
TURN2 = json.loads((FIXTURES / "anyclaude-responses-turn2.json").read_text())["body"]
CHAT_TURN1 = json.loads((FIXTURES / "anyclaude-chat-completions-turn1.json").read_text())["body"]

CTX = ResponseContext("chatcmpl-42", 1_760_000_000, "served-model", client_request=TURN2)
READ = ToolCall("call_a1", "Read", '{"file_path":"/tmp/project/notes.txt"}')
GREP = ToolCall("call_b2", "Grep", '{"pattern":"secret","path":"/tmp"}')
USAGE = Usage(1200, 40, 1024)


# --- requests ------------------------------------------------------------------------------------

def test_fixture_turn2_translates_to_the_chat_conversation() -> None:
    chat = to_chat(TURN2)
    system, user, assistant, out1, out2 = chat["messages"]
    assert system == {"role": "system", "content": TURN2["input"][0]["content"]}
    assert user == {"role": "user", "content": "What is the secret word in notes.txt?"}
    # Consecutive function_call items form one assistant turn, in order.
    assert assistant == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_fake_1", "type": "function",
         "function": {"name": "Read", "arguments": '{"file_path":"/tmp/project/notes.txt"}'}},
        {"id": "call_fake_1", "type": "function", "function": {"name": "Read", "arguments": "{}"}}]}
    assert out1 == {"role": "tool", "tool_call_id": "call_fake_1", "content": TURN2["input"][4]["output"]}
    assert out2["role"] == "tool" and out2["content"].startswith("<tool_use_error>")
    assert {k: v for k, v in chat.items() if k not in ("messages", "tools")} == {
        "model": "fake-model", "temperature": 1, "max_completion_tokens": 32000, "tool_choice": "auto",
        "stream": True}
    assert [t["function"]["name"] for t in chat["tools"]] == [t["name"] for t in TURN2["tools"]]


def test_fixture_tools_match_what_the_chat_client_sent_for_the_same_tool() -> None:
    """The same Claude Code tool, sent by anyclaude over chat and over Responses, becomes equal."""
    chat_tools = {t["function"]["name"]: t for t in CHAT_TURN1["tools"]}
    converted = {t["function"]["name"]: t for t in to_chat(TURN2)["tools"]}
    for name in ("Read", "Bash", "Edit", "TodoWrite"):
        assert converted[name] == chat_tools[name]


def test_string_input_instructions_and_developer_role() -> None:
    assert to_chat({"model": "m", "input": "hi", "instructions": "be brief"})["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    chat = to_chat({"input": [{"type": "message", "role": "developer", "content": "rules"},
                              {"role": "user", "content": [{"type": "input_text", "text": "a"},
                                                           {"type": "input_text", "text": "b"}]}]})
    assert chat["messages"] == [{"role": "system", "content": "rules"}, {"role": "user", "content": "ab"}]


def test_calls_join_the_assistant_text_before_them_and_not_after_tool_output() -> None:
    chat = to_chat({"input": [
        {"role": "user", "content": "go"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Reading."}]},
        {"type": "function_call", "call_id": "c1", "name": "Read", "arguments": "{}"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
        {"type": "function_call", "call_id": "c2", "name": "Grep", "arguments": "{}"},
    ]})
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert chat["messages"][1]["content"] == "Reading."
    assert [c["id"] for c in chat["messages"][1]["tool_calls"]] == ["c1"]
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    assert chat["messages"][3] == {"role": "assistant", "content": "",
                                   "tool_calls": [{"id": "c2", "type": "function",
                                                   "function": {"name": "Grep", "arguments": "{}"}}]}


def test_settings_without_effect_are_not_forwarded() -> None:
    chat = to_chat({"input": "x", "reasoning": {"effort": "high"}, "parallel_tool_calls": False, "store": True,
                    "service_tier": "auto", "include": ["reasoning.encrypted_content"], "metadata": {"a": "b"},
                    "user": "u", "prompt_cache_key": "k", "truncation": "auto", "text": {"format": {"type": "text"}},
                    "top_p": 0.5, "max_output_tokens": 10, "stream": False})
    assert chat == {"messages": [{"role": "user", "content": "x"}], "top_p": 0.5, "max_completion_tokens": 10,
                    "stream": False}


def test_tool_choice_forms() -> None:
    assert to_chat({"input": "x", "tool_choice": "required"})["tool_choice"] == "required"
    assert to_chat({"input": "x", "tool_choice": {"type": "function", "name": "Read"}})["tool_choice"] == {
        "type": "function", "function": {"name": "Read"}}


@pytest.mark.parametrize("body, code, param", [
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "see"},
                                             {"type": "input_image", "image_url": "data:,"}]}]},
     "unsupported_content", "input[0].content[1]"),
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}, "unsupported_content",
     "tools[0].type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "unsupported_content", "input[0].type"),
    ({"input": "x", "previous_response_id": "resp_1"}, "unsupported_content", "previous_response_id"),
    ({"input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}, "unsupported_content",
     "text.format"),
    ({"input": "x", "tool_choice": {"type": "file_search"}}, "unsupported_content", "tool_choice"),
    ({"input": [{"role": "tool", "content": "x"}]}, "invalid_request", "input[0].role"),
    ({"input": 3}, "invalid_request", "input"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "invalid_request",
     "input[0].arguments"),
    ({"input": "x", "instructions": ["a"]}, "invalid_request", "instructions"),
])
def test_unsupported_or_malformed_requests_are_400_naming_the_field(body: dict, code: str, param: str) -> None:
    with pytest.raises(ProxyError) as err:
        to_chat(body)
    assert (err.value.code, err.value.param, err.value.status) == (code, param, 400)


def test_item_reference_is_refused_with_the_way_out() -> None:
    """The Vercel AI SDK sends item_reference instead of an item it stored, when `store` is on."""
    with pytest.raises(ProxyError) as err:
        to_chat({"input": [{"type": "item_reference", "id": "msg_1"}]})
    assert "store: false" in err.value.message


# --- JSON rendering ------------------------------------------------------------------------------

def test_render_json_text_and_calls_parse_as_sdk_response() -> None:
    c = Completion(content="Let me look.", finish_reason="tool_calls", tool_calls=(READ, GREP), usage=USAGE)
    r = Response.model_validate(render_json(c, CTX))
    assert r.id == "resp_42" and r.object == "response" and r.status == "completed"
    assert r.created_at == 1_760_000_000 and r.model == "served-model" and r.incomplete_details is None
    assert r.output_text == "Let me look."
    assert [(o.type, o.id) for o in r.output] == [("message", "msg_42_0"), ("function_call", "fc_42_1"),
                                                 ("function_call", "fc_42_2")]
    calls = r.output[1:]
    assert [(c.call_id, c.name, c.arguments, c.status) for c in calls] == [
        ("call_a1", "Read", READ.arguments, "completed"), ("call_b2", "Grep", GREP.arguments, "completed")]
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens, r.usage.total_tokens) == (1200, 40, 1240)
    assert r.usage.input_tokens_details.cached_tokens == 1024
    assert len(r.tools) == len(TURN2["tools"]) and r.tool_choice == "auto" and r.parallel_tool_calls is True


def test_render_json_length_is_incomplete_and_usage_defaults_to_zero() -> None:
    r = Response.model_validate(render_json(Completion(content="abc", finish_reason="length"),
                                            ResponseContext("resp_x", 1, "m")))
    assert r.status == "incomplete" and r.incomplete_details is not None
    assert r.incomplete_details.reason == "max_output_tokens"
    assert r.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert r.usage is not None and r.usage.total_tokens == 0
    assert r.id == "resp_x" and r.tools == [] and r.tool_choice == "auto"
    nulls = ResponseContext("resp_x", 1, "m", client_request={"tools": None, "tool_choice": None, "input": "x"})
    assert Response.model_validate(render_json(Completion(content="a", finish_reason="stop"), nulls)).tools == []


def test_render_json_reasoning_is_a_summary_item_before_the_message() -> None:
    c = Completion(content="42", reasoning="think think", finish_reason="stop")
    r = Response.model_validate(render_json(c, CTX))
    assert [o.type for o in r.output] == ["reasoning", "message"]
    assert r.output[0].summary[0].text == "think think"  # type: ignore[union-attr]
    assert r.output_text == "42"


# --- streaming -------------------------------------------------------------------------------------

def stream_bytes(events: list, ctx: ResponseContext = CTX, error: ProxyError | None = None) -> bytes:
    renderer = ResponsesStreamRenderer(ctx)
    out = renderer.head() + [renderer.keepalive()]
    for ev in events:
        out += renderer.render(ev)
    if error is not None:
        out += renderer.fail(error)
    return b"".join(out)


SEQUENCES = {
    "text only": [TextDelta("Hel"), TextDelta("lo"), Finish("stop", USAGE)],
    "calls only": [ToolCallDelta(0, READ), ToolCallDelta(1, GREP), Finish("tool_calls", USAGE)],
    "text and calls": [TextDelta("Looking"), ToolCallDelta(0, READ), ToolCallDelta(1, GREP),
                       ToolCallDelta(2, ToolCall("call_c", "Bash", "")), Finish("tool_calls", USAGE)],
    "reasoning text call": [ReasoningDelta("hm"), ReasoningDelta("m"), TextDelta("ok"), ToolCallDelta(0, READ),
                            Finish("tool_calls", None)],
    "length": [TextDelta("partial"), Finish("length", USAGE)],
    "empty": [Finish("stop", Usage(5, 0))],
    "text after call": [TextDelta("a"), ToolCallDelta(0, READ), TextDelta("b"), Finish("stop", USAGE)],
}


@pytest.mark.parametrize("name", SEQUENCES)
def test_stream_is_valid_and_ends_with_what_render_json_returns(name: str) -> None:
    events = SEQUENCES[name]
    final = check_responses_stream(parse_sse(stream_bytes(events)))
    builder = CompletionBuilder()
    builder.extend(events)
    if name != "text after call":  # JSON groups all text in one message; the stream keeps the order
        assert final == render_json(builder.build(), CTX)
    texts = [c["text"] for o in final["output"] if o["type"] == "message" for c in o["content"]]
    assert "".join(texts) == "".join(e.text for e in events if isinstance(e, TextDelta))


def test_stream_length_ends_incomplete() -> None:
    final = check_responses_stream(parse_sse(stream_bytes(SEQUENCES["length"])))
    assert final["status"] == "incomplete" and final["incomplete_details"] == {"reason": "max_output_tokens"}


def test_stream_failure_mid_text_closes_the_item_then_error_then_failed() -> None:
    raw = stream_bytes([TextDelta("half")], error=ProxyError("upstream_timeout", "no token for 120 s"))
    events = parse_sse(raw)
    final = check_responses_stream(events)
    assert [n for n, _ in events[-3:]] == ["response.output_item.done", "error", "response.failed"]
    assert events[-2][1]["code"] == "upstream_timeout"
    assert final["status"] == "failed" and final["error"]["message"] == "no token for 120 s"
    assert final["output"][0]["status"] == "incomplete"


def test_fail_before_head_still_yields_a_valid_stream_and_fail_after_finish_adds_nothing() -> None:
    renderer = ResponsesStreamRenderer(CTX)
    check_responses_stream(parse_sse(b"".join(renderer.fail(ProxyError("internal_error", "boom")))))
    renderer = ResponsesStreamRenderer(CTX)
    renderer.head()
    renderer.render(Finish("stop"))
    assert renderer.fail(ProxyError("internal_error", "late")) == []


events_strategy = st.lists(st.one_of(
    st.builds(TextDelta, st.text(min_size=0, max_size=8)),
    st.builds(ReasoningDelta, st.text(min_size=0, max_size=8)),
    st.builds(lambda i, n: ToolCallDelta(i, ToolCall(f"call_{i}", n, '{"k":1}')),
              st.integers(0, 99), st.sampled_from(["Read", "Bash"])),
), max_size=12)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(events_strategy, st.sampled_from(["stop", "length", "tool_calls"]), st.booleans())
def test_any_event_sequence_renders_a_valid_stream(events: list, finish: str, fails: bool) -> None:
    tail = [] if fails else [Finish(finish, USAGE)]
    err = ProxyError("upstream_error", "gone") if fails else None
    final = check_responses_stream(parse_sse(stream_bytes(events + tail, error=err)))
    calls = [o["call_id"] for o in final["output"] if o["type"] == "function_call"]
    assert calls == [e.call.id for e in events if isinstance(e, ToolCallDelta)]
    texts = [c["text"] for o in final["output"] if o["type"] == "message" for c in o["content"]]
    assert "".join(texts) == "".join(e.text for e in events if isinstance(e, TextDelta))


# --- the real SDK as the client ---------------------------------------------------------------------

def sdk_client(body: bytes, content_type: str) -> openai.OpenAI:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})
    return openai.OpenAI(api_key="x", base_url="http://proxy.test/v1", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)))


def test_sdk_create_parses_rendered_json() -> None:
    c = Completion(content="hi", finish_reason="tool_calls", tool_calls=(READ,), usage=USAGE)
    client = sdk_client(json.dumps(render_json(c, CTX)).encode(), "application/json")
    r = client.responses.create(model="m", input="x")
    assert r.output_text == "hi" and r.output[1].type == "function_call"
    assert r.output[1].arguments == READ.arguments  # type: ignore[union-attr]


def item_summary(item: object) -> tuple:
    """What a client uses of an output item (the SDK's parsed types add fields of their own)."""
    d = item.model_dump()  # type: ignore[attr-defined]
    texts = [p["text"] for p in d.get("content") or d.get("summary") or []]
    return d["type"], d["id"], d["status"], texts, d.get("call_id"), d.get("name"), d.get("arguments")


@pytest.mark.parametrize("name", ["text and calls", "reasoning text call", "empty", "text only"])
def test_sdk_stream_accumulator_assembles_the_same_response(name: str) -> None:
    events = SEQUENCES[name]
    client = sdk_client(stream_bytes(events), "text/event-stream")
    with client.responses.stream(model="m", input="x") as stream:
        seen = [ev.type for ev in stream]
        final = stream.get_final_response()
    builder = CompletionBuilder()
    builder.extend(events)
    expected = Response.model_validate(render_json(builder.build(), CTX))
    assert final.output_text == expected.output_text
    assert [item_summary(o) for o in final.output] == [item_summary(o) for o in expected.output]
    assert final.usage == expected.usage and final.status == expected.status
    assert seen[0] == "response.created" and seen[-1] == "response.completed"


def test_sdk_stream_length_ends_with_an_incomplete_snapshot() -> None:
    """Like OpenAI: a length cut ends with response.incomplete (the SDK has no final response)."""
    client = sdk_client(stream_bytes(SEQUENCES["length"]), "text/event-stream")
    with client.responses.stream(model="m", input="x") as stream:
        last = list(stream)[-1]
    assert last.type == "response.incomplete"
    assert last.response.output_text == "partial"  # type: ignore[union-attr]
    assert last.response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]


def test_sdk_stream_surfaces_a_failure_as_typed_events() -> None:
    client = sdk_client(stream_bytes([TextDelta("x")], error=ProxyError("upstream_error", "upstream died")),
                        "text/event-stream")
    events = list(client.responses.create(model="m", input="x", stream=True))
    assert events[-2].type == "error" and events[-2].message == "upstream died"  # type: ignore[union-attr]
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None  # type: ignore[union-attr]


def with_unique_call_ids(events: list) -> list:
    """The SDK pairs streamed calls by call_id, so a response must not repeat one (the pipeline's ids don't)."""
    return [ToolCallDelta(e.index, ToolCall(f"call_{n}", e.call.name, e.call.arguments))
            if isinstance(e, ToolCallDelta) else e for n, e in enumerate(events)]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(events_strategy, st.sampled_from(["stop", "tool_calls"]))
def test_sdk_accumulator_accepts_any_event_sequence(events: list, finish: str) -> None:
    events = with_unique_call_ids(events)
    client = sdk_client(stream_bytes(events + [Finish(finish, USAGE)]), "text/event-stream")
    with client.responses.stream(model="m", input="x") as stream:
        final = stream.get_final_response()
    assert final.output_text == "".join(e.text for e in events if isinstance(e, TextDelta))
    assert [o.call_id for o in final.output if o.type == "function_call"] == [  # type: ignore[union-attr]
        e.call.id for e in events if isinstance(e, ToolCallDelta)]
