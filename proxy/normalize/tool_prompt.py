"""Tools for a model whose chat template drops them: written into the prompt by the proxy (pure).

The format is llama.cpp's generic one (what llama.cpp itself prompts any model without native
tool support to write), which the proxy's extractor reads back (toolcalls/calls.py):

    {"tool_call": {"name": "NAME", "arguments": {...}}}
    {"tool_calls": [{"name": "NAME", "arguments": {...}}, ...]}

The tools and the instructions are appended to the system message (one is added first when the
conversation has none). Earlier calls and their results are written the same way, so the model
sees its own history in the format it is asked to use: an assistant turn's `tool_calls` become
that JSON after its text, and a tool result becomes a user turn
`{"tool_result": {"tool_call_id": ..., "content": ...}}`.
"""
from __future__ import annotations

import orjson

TOOL_PROMPT = (
    "# Tools\n\n"
    "You can call the tools below. To call one, reply with only this JSON, on a line of its own:\n"
    '{"tool_call": {"name": "<tool name>", "arguments": {<the arguments, as the tool\'s parameters say>}}}\n'
    'To call several at once: {"tool_calls": [{"name": ..., "arguments": {...}}, ...]}\n'
    "Otherwise, answer in plain text.\n\n"
    "Available tools:\n{tools}"
)


def _tool_line(tool: dict) -> str:
    fn = tool.get("function") or {}
    return orjson.dumps({k: fn[k] for k in ("name", "description", "parameters") if k in fn}).decode()


def with_tool_prompt(messages: list[dict], tools: list[dict]) -> list[dict]:
    """The conversation as sent to a template that drops tools (the caller's list is not changed)."""
    prompt = TOOL_PROMPT.replace("{tools}", "\n".join(_tool_line(t) for t in tools))
    out = [_as_text(m) for m in messages]
    if out and out[0].get("role") == "system":
        head = out[0].get("content") or ""
        out[0] = {**out[0], "content": f"{head}\n\n{prompt}" if head else prompt}
    else:
        out.insert(0, {"role": "system", "content": prompt})
    return out


def _as_text(message: dict) -> dict:
    if message.get("role") == "tool":
        result = {"tool_call_id": message.get("tool_call_id"), "content": message.get("content") or ""}
        return {"role": "user", "content": orjson.dumps({"tool_result": result}).decode()}
    calls = message.get("tool_calls")
    if message.get("role") != "assistant" or not calls:
        return message
    written = []
    for call in calls:
        fn = call.get("function") or {}
        written.append({"name": fn.get("name"), "arguments": orjson.loads(fn.get("arguments") or "{}")})
    body = {"tool_call": written[0]} if len(written) == 1 else {"tool_calls": written}
    text = message.get("content") or ""
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    out["content"] = (text + "\n" if text else "") + orjson.dumps(body).decode()
    return out
