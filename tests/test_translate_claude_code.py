"""What Claude Code 2.1 sends over Messages, translated to chat (pure; shapes recorded from the
real clients 2.0.77 and 2.1.332 through a recording server, texts here written for the test).

System messages inside `messages`, deferred tools loaded through ToolSearch, tool changes inside
system messages, and the fields the proxy reads, ignores or refuses.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import ProxyError
from proxy.normalize import CALLABLE_TOOLS_FIELD, NormalizeConfig, normalize_chat
from proxy.translate.messages import to_chat

EPHEMERAL_1H = {"type": "ephemeral", "ttl": "1h"}
READ = {"name": "Read", "description": "Reads a file.", "input_schema": {
    "type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}
TOOL_SEARCH = {"name": "ToolSearch", "description": "Loads deferred tools.", "input_schema": {
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}
WEB_FETCH = {"name": "WebFetch", "description": "Fetches a URL.", "defer_loading": True, "input_schema": {
    "type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}}
PLACEHOLDER = {"name": "DeferredToolPlaceholder", "defer_loading": True,
               "input_schema": {"type": "object", "properties": {}}}


def chat_tool(tool: dict) -> dict:
    fn = {"name": tool["name"], "parameters": tool["input_schema"]}
    if "description" in tool:
        fn = {"name": tool["name"], "description": tool["description"], "parameters": tool["input_schema"]}
    return {"type": "function", "function": fn}


def reminder(text: str) -> str:
    return f"<system-reminder>\n{text}\n</system-reminder>"


def body(*messages: dict, **fields) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 32000, "system": "You are a coding agent.",
            "messages": list(messages), **fields}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def system(content) -> dict:
    return {"role": "system", "content": content}


# --- system messages inside `messages` ---------------------------------------------------------

def test_system_messages_at_the_start_join_the_system_prompt_and_later_ones_the_user_turn() -> None:
    chat = to_chat(body(
        system("Leading rules."),  # position 0, string
        user("Read notes.txt"),
        system([{"type": "text", "text": "# Environment\ncwd: /work", "cache_control": EPHEMERAL_1H},
                {"type": "text", "text": "Platform: linux"}]),  # last, blocks with cache_control + ttl
    ))
    assert chat["messages"] == [
        {"role": "system", "content": "You are a coding agent.\nLeading rules."},
        {"role": "user", "content": "Read notes.txt\n" + reminder("# Environment\ncwd: /work\nPlatform: linux")},
    ]


def test_a_system_message_in_position_1_and_after_tool_results() -> None:
    chat = to_chat({"messages": [
        user("hi"),
        system("second"),  # position 1
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read",
                                           "input": {"file_path": "a"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "A",
                                      "cache_control": {"type": "ephemeral"}}]},
        system("after the results"),
        {"role": "assistant", "content": "done"},
        system("before a user turn"),
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_2", "content": "B"},
                                     {"type": "text", "text": "go on"}]},
    ]})
    assert chat["messages"] == [
        {"role": "user", "content": "hi\n" + reminder("second")},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "Read", "arguments": '{"file_path":"a"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "A"},
        {"role": "user", "content": reminder("after the results")},
        {"role": "assistant", "content": "done"},
        # tool results stay right after the assistant turn; the reminder goes before the user's text
        {"role": "tool", "tool_call_id": "toolu_2", "content": "B"},
        {"role": "user", "content": reminder("before a user turn") + "\ngo on"},
    ]


def test_roles_alternate_whatever_the_system_messages() -> None:
    chat = to_chat({"messages": [user("a"), system("s1"), system("s2"), {"role": "assistant", "content": "b"},
                                 system("s3"), user("c")]})
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert chat["messages"][0]["content"] == "a\n" + reminder("s1") + "\n" + reminder("s2")
    assert chat["messages"][2]["content"] == reminder("s3") + "\nc"


def test_string_and_block_forms_of_one_system_message_are_the_same_request() -> None:
    """2.1.332 sends the env message as blocks with cache_control on the turn it is last, and as
    a string on the next turn: both must give the same chat text (same tokens, same key)."""
    as_blocks = to_chat(body(user("q"), system([{"type": "text", "text": "env", "cache_control": EPHEMERAL_1H}])))
    as_string = to_chat(body(user("q"), system("env")))
    assert as_blocks == as_string


ROLES = st.sampled_from(["user", "system", "assistant"])


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(ROLES, min_size=1, max_size=10), st.lists(ROLES, max_size=6))
def test_the_previous_turn_renders_as_a_prefix_of_the_next(first: list[str], later: list[str]) -> None:
    """Turn N+1 = turn N + the assistant's reply + anything: turn N's chat conversation is a
    prefix of turn N+1's, message for message, so the upstream's KV prefix cache still matches."""
    if "system" not in first + later:
        first = [*first, "system"]
    turn1 = [{"role": r, "content": f"{r}{i}"} for i, r in enumerate(first)]
    turn2 = turn1 + [{"role": "assistant", "content": "reply"}] + [
        {"role": r, "content": f"{r}-later{i}"} for i, r in enumerate(later)]
    if first[-1] == "assistant" or not any(r != "system" for r in first):
        return  # a request ends with the user's side and has a user or assistant message
    a, b = to_chat({"messages": turn1})["messages"], to_chat({"messages": turn2})["messages"]
    assert b[:len(a)] == a


# --- deferred tools, ToolSearch and tool changes --------------------------------------------------

def tool_search_turn(*tools: dict) -> dict:
    return body(
        user("find the fetch tool"),
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_s", "name": "ToolSearch",
                                           "input": {"query": "select:WebFetch"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_s",
             "content": [{"type": "tool_reference", "tool_name": "WebFetch"}]},
            {"type": "text", "text": "Tool loaded."}]},
        tools=list(tools))


def test_deferred_tools_are_not_rendered_until_tool_search_loads_them() -> None:
    before = to_chat(body(user("hi"), tools=[READ, TOOL_SEARCH, PLACEHOLDER]))
    assert before["tools"] == [chat_tool(READ), chat_tool(TOOL_SEARCH)]
    assert CALLABLE_TOOLS_FIELD not in before

    after = to_chat(tool_search_turn(READ, TOOL_SEARCH, WEB_FETCH, PLACEHOLDER))
    # the template's list (the system prompt) is the same as before the search: the prefix holds
    assert after["tools"] == before["tools"]
    assert after[CALLABLE_TOOLS_FIELD] == [chat_tool(READ), chat_tool(TOOL_SEARCH), chat_tool(WEB_FETCH)]
    result = after["messages"][-2]
    assert result["role"] == "tool" and result["tool_call_id"] == "toolu_s"
    assert result["content"] == ('{"type":"function","function":{"name":"WebFetch","description":"Fetches a URL.",'
                                 '"parameters":{"type":"object","properties":{"url":{"type":"string"}},'
                                 '"required":["url"]}}}\n')


def test_a_loaded_tool_is_callable_and_the_forwarded_request_does_not_carry_the_list() -> None:
    chat = to_chat(tool_search_turn(READ, TOOL_SEARCH, WEB_FETCH))
    req = normalize_chat(chat, NormalizeConfig(upstream_model="default_model", default_max_tokens=100,
                                               model_identity="m"))
    assert [t["function"]["name"] for t in req.tools] == ["Read", "ToolSearch", "WebFetch"]
    assert CALLABLE_TOOLS_FIELD not in req.upstream_body
    assert [t["function"]["name"] for t in req.upstream_body["tools"]] == ["Read", "ToolSearch"]
    assert CALLABLE_TOOLS_FIELD in req.key_material  # what the extractor accepts changes the answer


def test_tool_additions_and_removals_in_system_messages() -> None:
    bash = {"name": "Bash", "description": "Runs a command.",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
    chat = to_chat(body(
        user("start"),
        system([{"type": "text", "text": "Tools changed."},
                {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": bash}},
                {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "WebFetch"}},
                {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "Read"}}]),
        tools=[READ, WEB_FETCH]))
    assert chat["tools"] == [chat_tool(READ)]
    assert [t["function"]["name"] for t in chat[CALLABLE_TOOLS_FIELD]] == ["Bash", "WebFetch"]
    text = chat["messages"][-1]["content"]
    assert text.startswith("start\n<system-reminder>\nTools changed.\nTool now available: "
                           '{"type":"function","function":{"name":"Bash"')
    assert "Tool now available: " + '{"type":"function","function":{"name":"WebFetch"' in text
    assert text.endswith("Tool no longer available: Read\n</system-reminder>")


def test_an_image_inside_a_tool_result_is_named_not_refused() -> None:
    """Claude Code's Read of a PNG answers with an image block; refusing would fail every later
    turn (the block stays in the history), so the model is told what it cannot see."""
    chat = to_chat(body(
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
            {"type": "text", "text": "logo.png: "},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}]}))
    assert chat["messages"][-1] == {"role": "tool", "tool_call_id": "t1",
                                    "content": "logo.png: [image omitted: the model reads text only]"}


def test_an_image_the_user_sends_is_still_a_400() -> None:
    with pytest.raises(ProxyError) as err:
        to_chat(body({"role": "user", "content": [{"type": "image", "source": {}}]}))
    assert (err.value.status, err.value.param) == (400, "messages[0].content[0]")


# --- top-level fields ---------------------------------------------------------------------------

CLAUDE_CODE_21_SETTINGS = {
    "metadata": {"user_id": '{"device_id":"d","session_id":"s"}'},
    "thinking": {"type": "adaptive", "display": "omitted"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "cache_control": {"type": "ephemeral"},
    "service_tier": "auto",
}


def test_settings_that_cannot_change_the_answer_do_not_change_the_request() -> None:
    plain = to_chat(body(user("hi"), tools=[READ]))
    assert to_chat(body(user("hi"), tools=[{**READ, "cache_control": EPHEMERAL_1H, "strict": True}],
                        **CLAUDE_CODE_21_SETTINGS)) == plain


def test_an_unknown_field_is_ignored_and_logged_once(caplog) -> None:
    with caplog.at_level("INFO", logger="proxy.translate.messages"):
        for _ in range(3):
            assert to_chat(body(user("hi"), future_knob_xyz=1)) == to_chat(body(user("hi")))
    assert sum("future_knob_xyz" in r.getMessage() for r in caplog.records) == 1
