"""Anthropic Messages translator: requests -> chat, completions -> message objects and SSE.

Rendered output is parsed with the `anthropic` SDK's types and fed through its stream
accumulator over an httpx MockTransport; requests use Claude Code's real tools (from the
captured anyclaude body) in Anthropic's shape.
"""
from __future__ import annotations

import json

import anthropic
import httpx2 as httpx  # the transport library the openai and anthropic SDKs use here
import pytest
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.completion import Completion, CompletionBuilder, Finish, ReasoningDelta, TextDelta, ToolCall, \
    ToolCallDelta, Usage
from proxy.errors import ProxyError
from proxy.translate.base import ResponseContext
from proxy.tokens import estimate_tokens
from proxy.translate.messages import MessagesStreamRenderer, render_json, to_chat
from tests.rig.event_checkers import check_messages_stream, parse_sse

from tests.rig.request_shape import FIXTURES
TURN2 = json.loads((FIXTURES / "anyclaude-responses-turn2.json").read_text())["body"]
# Claude Code's tools as it sends them to Anthropic (name, description, input_schema).
CLAUDE_TOOLS = [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                for t in TURN2["tools"]]

CTX = ResponseContext("chatcmpl-42", 1_760_000_000, "claude-sonnet-4-5")
THINKING_CTX = ResponseContext("chatcmpl-43", 1_760_000_000, "claude-sonnet-4-5",
                               client_request={"thinking": {"type": "enabled", "budget_tokens": 2048}})
READ = ToolCall("call_a1", "Read", '{"file_path":"/tmp/project/notes.txt"}')
GREP = ToolCall("toolu_b2", "Grep", '{"pattern":"secret"}')
USAGE = Usage(1200, 40, 1024)

CLAUDE_CODE_TURN = {
    "model": "claude-sonnet-4-5-20250929", "max_tokens": 32000, "stream": True,
    "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.0; cch=abc;"},
               {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                     {"type": "text", "text": "What is the secret word?",
                                      "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should read it.", "signature": "sig"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "/tmp/notes.txt"}},
            {"type": "tool_use", "id": "toolu_02", "name": "Grep", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01", "content": "pineapple"},
            {"type": "tool_result", "tool_use_id": "toolu_02", "is_error": True,
             "content": [{"type": "text", "text": "no "}, {"type": "text", "text": "pattern"}]},
            {"type": "text", "text": "Go on."}]},
    ],
    "tools": CLAUDE_TOOLS, "tool_choice": {"type": "auto"}, "temperature": 1, "top_k": 40,
    "metadata": {"user_id": "u"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
    "stop_sequences": ["</done>"],
}


# --- requests ------------------------------------------------------------------------------------

def test_claude_code_turn_translates_to_the_chat_conversation() -> None:
    chat = to_chat(CLAUDE_CODE_TURN)
    assert chat["messages"] == [
        {"role": "system", "content": "x-anthropic-billing-header: cc_version=2.0; cch=abc;\nYou are Claude Code."},
        {"role": "user", "content": "<system-reminder>ctx</system-reminder>What is the secret word?"},
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "toolu_01", "type": "function",
             "function": {"name": "Read", "arguments": '{"file_path":"/tmp/notes.txt"}'}},
            {"id": "toolu_02", "type": "function", "function": {"name": "Grep", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "pineapple"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "Error: no pattern"},
        {"role": "user", "content": "Go on."},
    ]
    assert {k: v for k, v in chat.items() if k not in ("messages", "tools")} == {
        "model": "claude-sonnet-4-5-20250929", "max_completion_tokens": 32000, "stream": True,
        "tool_choice": "auto", "temperature": 1, "top_k": 40, "stop": ["</done>"]}


def test_tools_take_the_chat_shape_of_the_same_claude_code_tools() -> None:
    """Claude Code's tools over Messages become what anyclaude sends over chat (minus `strict`)."""
    chat_tools = to_chat(CLAUDE_CODE_TURN)["tools"]
    assert [t["function"]["name"] for t in chat_tools] == [t["name"] for t in TURN2["tools"]]
    read = next(t for t in chat_tools if t["function"]["name"] == "Read")
    source = next(t for t in TURN2["tools"] if t["name"] == "Read")
    assert read == {"type": "function", "function": {"name": "Read", "description": source["description"],
                                                     "parameters": source["parameters"]}}


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "Read", "disable_parallel_tool_use": True},
     {"type": "function", "function": {"name": "Read"}}),
])
def test_tool_choice_forms(choice: dict, expected: object) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "tool_choice": choice}
    assert to_chat(body)["tool_choice"] == expected


def test_plain_strings_and_settings_without_effect() -> None:
    chat = to_chat({"model": "claude-3-5-haiku", "system": "be brief", "max_tokens": 5,
                    "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                    "metadata": {"user_id": "x"}, "service_tier": "auto", "stream": False})
    assert chat == {"model": "claude-3-5-haiku", "max_completion_tokens": 5, "stream": False, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize("body, code, param", [
    ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}}]}]},
     "unsupported_content", "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "s"}]},
     "unsupported_content", "tools[0].type"),
    ({"messages": [{"role": "developer", "content": "x"}]}, "invalid_request", "messages[0].role"),
    ({"messages": [{"role": "system", "content": "x"}]}, "invalid_request", "messages"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "system", "content": [{"type": "image"}]}]},
     "invalid_request", "messages[1].content[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "container": "c"}, "unsupported_content", "container"),
    ({"messages": [{"role": "user", "content": "x"}], "mcp_servers": []}, "unsupported_content", "mcp_servers"),
    ({"messages": [{"role": "user", "content": "x"}], "output_config": {"effort": "high", "format": {}}},
     "unsupported_content", "output_config.format"),
    ({"messages": [{"role": "user", "content": "x"}],
      "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
     "unsupported_content", "context_management.edits[0]"),
    ({"messages": [{"role": "user", "content": "x"}], "context_management": "all"}, "invalid_request",
     "context_management"),
    ({"messages": "x"}, "invalid_request", "messages"),
    ({"messages": [], "system": [{"type": "image"}]}, "invalid_request", "system[0]"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}]}]},
     "invalid_request", "messages[0].content[0].input"),
    ({"messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "tool"}}, "invalid_request",
     "tool_choice"),
])
def test_unsupported_or_malformed_requests_are_400_naming_the_field(body: dict, code: str, param: str) -> None:
    with pytest.raises(ProxyError) as err:
        to_chat(body)
    assert (err.value.code, err.value.param, err.value.status) == (code, param, 400)
    assert err.value.anthropic_body()["error"]["type"] == "invalid_request_error"


def test_estimate_tokens_grows_with_the_prompt_and_counts_tools() -> None:
    small = to_chat({"messages": [{"role": "user", "content": "hi"}]})
    big = to_chat({"messages": [{"role": "user", "content": "hi " * 400}]})
    with_tools = to_chat({"messages": [{"role": "user", "content": "hi"}], "tools": CLAUDE_TOOLS})
    assert 1 <= estimate_tokens(small) < 10
    assert 250 < estimate_tokens(big) < 400  # 1200 chars at ~4 chars a token
    tools_chars = len(json.dumps(with_tools["tools"]))
    assert estimate_tokens(with_tools) > tools_chars // 5
    assert estimate_tokens(to_chat(CLAUDE_CODE_TURN)) > estimate_tokens(with_tools)


# --- JSON rendering ------------------------------------------------------------------------------

def test_render_json_text_and_calls_parse_as_sdk_message() -> None:
    c = Completion(content="Let me look.", finish_reason="tool_calls", tool_calls=(READ, GREP), usage=USAGE)
    m = Message.model_validate(render_json(c, CTX))
    assert (m.id, m.type, m.role, m.model) == ("msg_42", "message", "assistant", "claude-sonnet-4-5")
    assert m.stop_reason == "tool_use" and m.stop_sequence is None
    assert [b.type for b in m.content] == ["text", "tool_use", "tool_use"]
    assert m.content[0].text == "Let me look."  # type: ignore[union-attr]
    uses = m.content[1:]
    assert [(u.id, u.name, u.input) for u in uses] == [  # type: ignore[union-attr]
        ("toolu_a1", "Read", {"file_path": "/tmp/project/notes.txt"}), ("toolu_b2", "Grep", {"pattern": "secret"})]
    # Anthropic's input_tokens excludes what the cache served.
    assert (m.usage.input_tokens, m.usage.cache_read_input_tokens, m.usage.output_tokens) == (176, 1024, 40)


@pytest.mark.parametrize("finish, calls, expected", [
    ("stop", (), "end_turn"), ("length", (), "max_tokens"), ("tool_calls", (READ,), "tool_use"),
    ("stop", (READ,), "tool_use"), ("content_filter", (), "refusal"), ("weird", (), "end_turn"),
])
def test_stop_reasons(finish: str, calls: tuple, expected: str) -> None:
    m = Message.model_validate(render_json(Completion(content="x", finish_reason=finish, tool_calls=calls), CTX))
    assert m.stop_reason == expected


def test_reasoning_is_a_thinking_block_only_when_thinking_was_enabled() -> None:
    c = Completion(content="42", reasoning="mull", finish_reason="stop")
    assert [b.type for b in Message.model_validate(render_json(c, CTX)).content] == ["text"]
    m = Message.model_validate(render_json(c, THINKING_CTX))
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].thinking == "mull"  # type: ignore[union-attr]


def test_empty_completion_and_unparsable_arguments() -> None:
    m = Message.model_validate(render_json(Completion(content=None, finish_reason="stop"), CTX))
    assert m.content == [] and m.usage.input_tokens == 0
    bad = Completion(content=None, finish_reason="tool_calls", tool_calls=(ToolCall("c", "f", "[1]"),))
    assert Message.model_validate(render_json(bad, CTX)).content[0].input == {}  # type: ignore[union-attr]


# --- streaming -------------------------------------------------------------------------------------

def stream_bytes(events: list, ctx: ResponseContext = CTX, error: ProxyError | None = None) -> bytes:
    renderer = MessagesStreamRenderer(ctx)
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
}


@pytest.mark.parametrize("ctx", [CTX, THINKING_CTX], ids=["no thinking", "thinking"])
@pytest.mark.parametrize("name", SEQUENCES)
def test_stream_is_valid_and_assembles_what_render_json_returns(name: str, ctx: ResponseContext) -> None:
    events = SEQUENCES[name]
    assembled = check_messages_stream(parse_sse(stream_bytes(events, ctx)))
    builder = CompletionBuilder()
    builder.extend(events)
    assert assembled == render_json(builder.build(), ctx)


def test_keepalive_is_a_ping_event() -> None:
    assert parse_sse(MessagesStreamRenderer(CTX).keepalive()) == [("ping", {"type": "ping"})]


def test_stream_failure_stops_the_open_block_then_sends_an_anthropic_error() -> None:
    raw = stream_bytes([TextDelta("half")], error=ProxyError("upstream_unavailable", "model is loading"))
    events = parse_sse(raw)
    body = check_messages_stream(events)
    assert [n for n, _ in events[-2:]] == ["content_block_stop", "error"]
    assert body == {"type": "error", "error": {"type": "overloaded_error", "message": "model is loading"}}


events_strategy = st.lists(st.one_of(
    st.builds(TextDelta, st.text(min_size=0, max_size=8)),
    st.builds(ReasoningDelta, st.text(min_size=0, max_size=8)),
    st.builds(lambda i, n: ToolCallDelta(i, ToolCall(f"call_{i}", n, '{"k":[1,2]}')),
              st.integers(0, 99), st.sampled_from(["Read", "Bash"])),
), max_size=12)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(events_strategy, st.sampled_from(["stop", "length", "tool_calls"]), st.booleans(), st.booleans())
def test_any_event_sequence_renders_a_valid_stream(events: list, finish: str, fails: bool, thinking: bool) -> None:
    ctx = THINKING_CTX if thinking else CTX
    tail = [] if fails else [Finish(finish, USAGE)]
    err = ProxyError("upstream_error", "gone") if fails else None
    result = check_messages_stream(parse_sse(stream_bytes(events + tail, ctx, err)))
    if fails:
        assert result["type"] == "error"
        return
    blocks = result["content"]
    assert [b["id"] for b in blocks if b["type"] == "tool_use"] == [
        "toolu_" + e.call.id.removeprefix("call_") for e in events if isinstance(e, ToolCallDelta)]
    assert "".join(b["text"] for b in blocks if b["type"] == "text") == "".join(
        e.text for e in events if isinstance(e, TextDelta))
    assert any(b["type"] == "thinking" for b in blocks) == (
        thinking and any(isinstance(e, ReasoningDelta) and e.text for e in events))


# --- the real SDK as the client ---------------------------------------------------------------------

def sdk_client(body: bytes, content_type: str) -> anthropic.Anthropic:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": content_type})
    return anthropic.Anthropic(api_key="x", base_url="http://proxy.test", max_retries=0,
                               http_client=httpx.Client(transport=httpx.MockTransport(handler)))


REQUEST = {"model": "served-model", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}


def test_sdk_create_parses_rendered_json() -> None:
    c = Completion(content="hi", finish_reason="tool_calls", tool_calls=(READ,), usage=USAGE)
    m = sdk_client(json.dumps(render_json(c, CTX)).encode(), "application/json").messages.create(**REQUEST)
    assert m.content[0].text == "hi" and m.content[1].input == {"file_path": "/tmp/project/notes.txt"}  # type: ignore


@pytest.mark.parametrize("name", SEQUENCES)
def test_sdk_stream_accumulator_assembles_the_same_message(name: str) -> None:
    events = SEQUENCES[name]
    client = sdk_client(stream_bytes(events, THINKING_CTX), "text/event-stream")
    with client.messages.stream(**REQUEST) as stream:
        final = stream.get_final_message()
    builder = CompletionBuilder()
    builder.extend(events)
    expected = Message.model_validate(render_json(builder.build(), THINKING_CTX))
    assert final.model_dump(exclude_none=True) == expected.model_dump(exclude_none=True)


def test_sdk_stream_raises_the_error_event() -> None:
    raw = stream_bytes([TextDelta("x")], error=ProxyError("upstream_timeout", "no token for 120 s"))
    client = sdk_client(raw, "text/event-stream")
    with pytest.raises(anthropic.APIStatusError) as err:
        with client.messages.stream(**REQUEST) as stream:
            stream.get_final_message()
    assert "no token for 120 s" in str(err.value)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(events_strategy, st.sampled_from(["stop", "tool_calls", "length"]))
def test_sdk_accumulator_accepts_any_event_sequence(events: list, finish: str) -> None:
    client = sdk_client(stream_bytes(events + [Finish(finish, USAGE)], THINKING_CTX), "text/event-stream")
    with client.messages.stream(**REQUEST) as stream:
        final = stream.get_final_message()
    assert "".join(b.text for b in final.content if b.type == "text") == "".join(
        e.text for e in events if isinstance(e, TextDelta))
    assert [b.input for b in final.content if b.type == "tool_use"] == [
        {"k": [1, 2]} for e in events if isinstance(e, ToolCallDelta)]
