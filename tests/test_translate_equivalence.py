"""One conversation sent over chat, Responses and Messages normalizes to one cache key material."""
from __future__ import annotations

import json

from proxy.normalize import NormalizeConfig, normalize_chat
from proxy.translate import messages, responses
from tests.rig.request_shape import FIXTURES

CFG = NormalizeConfig(upstream_model="default_model", default_max_tokens=8192, model_identity="m")
SCHEMA = {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}

# anyclaude-local's chat shape: string contents, content "" on a tool-only assistant turn.
CHAT = {
    "model": "fake-model", "stream": True, "stream_options": {"include_usage": True},
    "max_completion_tokens": 1000, "temperature": 0.5, "tool_choice": "auto", "parallel_tool_calls": False,
    "messages": [
        {"role": "system", "content": "You are Claude Code.\nBe brief."},
        {"role": "user", "content": "What is the secret word?"},
        {"role": "assistant", "content": "Reading.", "tool_calls": [
            {"id": "toolu_01", "type": "function", "function": {"name": "Read", "arguments": '{"file_path":"n.txt"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "pineapple"},
        {"role": "user", "content": "Thanks."},
    ],
    "tools": [{"type": "function", "function": {"name": "Read", "description": "Read a file", "parameters": SCHEMA}}],
}

RESPONSES = {
    "model": "fake-model", "stream": True, "max_output_tokens": 1000, "temperature": 0.5, "tool_choice": "auto",
    "parallel_tool_calls": True, "reasoning": {"summary": "auto"}, "store": False,
    "instructions": "You are Claude Code.\nBe brief.",
    "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "What is the secret word?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Reading."}]},
        {"type": "function_call", "call_id": "toolu_01", "name": "Read", "arguments": '{"file_path": "n.txt"}'},
        {"type": "function_call_output", "call_id": "toolu_01", "output": "pineapple"},
        {"role": "user", "content": "Thanks."},
    ],
    "tools": [{"type": "function", "name": "Read", "description": "Read a file", "parameters": SCHEMA}],
}

MESSAGES = {
    "model": "claude-sonnet-4-5", "stream": False, "max_tokens": 1000, "temperature": 0.5,
    "tool_choice": {"type": "auto"}, "metadata": {"user_id": "u"},
    "system": [{"type": "text", "text": "You are Claude Code."},
               {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [
        {"role": "user", "content": "What is the secret word?"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "read it", "signature": "s"},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_01", "name": "Read", "input": {"file_path": "n.txt"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01",
                                      "content": [{"type": "text", "text": "pineapple"}]},
                                     {"type": "text", "text": "Thanks."}]},
    ],
    "tools": [{"name": "Read", "description": "Read a file", "input_schema": SCHEMA}],
}


def key_material(chat_body: dict) -> bytes:
    return json.dumps(normalize_chat(chat_body, CFG).key_material, sort_keys=True).encode()


def test_the_same_conversation_hits_the_same_cache_entry_from_every_protocol() -> None:
    expected = key_material(CHAT)
    assert key_material(responses.to_chat(RESPONSES)) == expected
    assert key_material(messages.to_chat(MESSAGES)) == expected


def test_a_different_tool_result_is_a_different_entry() -> None:
    changed = json.loads(json.dumps(MESSAGES))
    changed["messages"][2]["content"][0]["is_error"] = True
    assert key_material(messages.to_chat(changed)) != key_material(CHAT)


def test_anyclaude_turn1_over_chat_equals_its_responses_and_messages_forms() -> None:
    """The captured chat body (real Claude Code prompt and tools) rebuilt in the other protocols."""
    fixture = FIXTURES / "anyclaude-chat-completions-turn1.json"
    chat = json.loads(fixture.read_text())["body"]
    system, user = chat["messages"]
    flat_tools = [{"type": "function", **t["function"]} for t in chat["tools"]]
    as_responses = {  # the shape anyclaude 1.2.1 sends (see anyclaude-responses-turn2.json)
        "model": chat["model"], "stream": True, "temperature": 1, "max_output_tokens": 32000, "tool_choice": "auto",
        "reasoning": {"summary": "auto"}, "parallel_tool_calls": True, "tools": flat_tools,
        "input": [system, {"role": "user", "content": [{"type": "input_text", "text": user["content"]}]}]}
    as_messages = {  # the shape Claude Code sends to Anthropic
        "model": "claude-sonnet-4-5", "stream": True, "temperature": 1, "max_tokens": 32000,
        "system": [{"type": "text", "text": part} for part in system["content"].split("\n", 1)],
        "messages": [{"role": "user", "content": [{"type": "text", "text": user["content"]}]}],
        "tools": [{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]}
                  for t in flat_tools]}
    expected = key_material(chat)
    assert key_material(responses.to_chat(as_responses)) == expected
    # Anthropic tools carry no `strict`, and chat templates render `strict` into the prompt, so the
    # Messages form equals the chat body without it.
    assert key_material(messages.to_chat(as_messages)) != expected
    for tool in chat["tools"]:
        del tool["function"]["strict"]
    assert key_material(messages.to_chat(as_messages)) == key_material(chat)
