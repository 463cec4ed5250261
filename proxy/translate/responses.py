"""OpenAI Responses (/v1/responses) requests -> the canonical chat completions request.

The chat request built here is the one a chat client would send for the same conversation, so a
Responses request and its chat equivalent normalize to one cache entry: the system prompt is a
leading system message, text parts are joined into a string (as mlx_lm.server joins a content
list), tools take chat's nested shape, and nothing only Responses has is forwarded.
Settings with no effect on a local chat model (reasoning, parallel_tool_calls, store, include,
metadata, user, prompt_cache_key, truncation, service_tier, ...) are accepted and not forwarded.
Rendering the result back (JSON and SSE) lives in `responses_render` and `responses_stream`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ProxyError, invalid
from ..normalize.messages import ROLE_MAP, TEXT_PART_TYPES
from .responses_render import render_json
from .responses_stream import ResponsesStreamRenderer

__all__ = ["to_chat", "render_json", "ResponsesStreamRenderer"]

# Settings that would silently change the answer if ignored: refused with the reason.
REFUSED_FIELDS: dict[str, str] = {
    "previous_response_id": "this proxy keeps no stored responses; send the whole conversation in `input`",
    "conversation": "this proxy keeps no stored conversations; send the whole conversation in `input`",
    "prompt": "stored prompt templates are not supported",
    "background": "background responses are not supported",
}
# Responses message roles -> chat roles: the chat table's, less those Responses says with items
# of their own (tool results are function_call_output items).
ROLES = {role: chat_role for role, chat_role in ROLE_MAP.items() if chat_role not in ("tool", "function")}
# Why some input items cannot be served (the Vercel AI SDK sends item_reference when `store` is on).
UNSUPPORTED_ITEM_HINTS = {
    "item_reference": "this proxy keeps no stored items: send the items themselves, e.g. with store: false",
}
# Chat's own tool_choice strings, which Responses shares.
TOOL_CHOICE_STRINGS = frozenset({"auto", "none", "required"})


def to_chat(body: dict) -> dict:
    """The chat completions request equivalent to a Responses request (ProxyError 400 if not)."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    for name, reason in REFUSED_FIELDS.items():
        if body.get(name):
            raise ProxyError("unsupported_content", f"`{name}`: {reason}", param=name)
    _check_text_format(body.get("text"))

    messages: list[dict] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise invalid("`instructions` must be a string", "instructions")
        messages.append({"role": "system", "content": instructions})
    messages.extend(_input_messages(body.get("input")))

    chat: dict[str, Any] = {"messages": messages}
    for name in ("model", "temperature", "top_p", "stream"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    return chat


def _check_text_format(text: Any) -> None:
    if text is None:
        return
    fmt = text.get("format") if isinstance(text, dict) else None
    kind = fmt.get("type") if isinstance(fmt, dict) else "text"
    if kind != "text":
        raise ProxyError("unsupported_content", f"text.format `{kind}` is not supported: the upstream "
                         "only produces plain text", param="text.format")


# --- input items ------------------------------------------------------------------------------

def _input_messages(raw: Any) -> list[dict]:
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise invalid("`input` must be a string or a list of items", "input")
    out: list[dict] = []
    for i, item in enumerate(raw):
        path = f"input[{i}]"
        if not isinstance(item, dict):
            raise invalid(f"`{path}` must be an object", path)
        kind = item.get("type", "message")
        handler = ITEM_HANDLERS.get(kind)
        if handler is None:
            hint = UNSUPPORTED_ITEM_HINTS.get(kind, "supported: message, function_call, function_call_output")
            raise ProxyError("unsupported_content", f"input item type `{kind}` is not supported ({hint})",
                             param=f"{path}.type")
        handler(item, path, out)
    return out


def _message_item(item: dict, path: str, out: list[dict]) -> None:
    role = ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise invalid(f"`{path}.role` must be one of {sorted(ROLES)}", f"{path}.role")
    out.append({"role": role, "content": _text(item.get("content"), f"{path}.content")})


def _function_call_item(item: dict, path: str, out: list[dict]) -> None:
    """Calls join the assistant message just before them: one chat turn holds its text and calls."""
    for name in ("call_id", "name", "arguments"):
        if not isinstance(item.get(name), str):
            raise invalid(f"`{path}.{name}` must be a string", f"{path}.{name}")
    call = {"id": item["call_id"], "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]}}
    if not out or out[-1]["role"] != "assistant":
        # "" rather than null: what anyclaude's chat client sends for a tool-only turn.
        out.append({"role": "assistant", "content": ""})
    out[-1].setdefault("tool_calls", []).append(call)


def _function_call_output_item(item: dict, path: str, out: list[dict]) -> None:
    if not isinstance(item.get("call_id"), str):
        raise invalid(f"`{path}.call_id` must be a string", f"{path}.call_id")
    out.append({"role": "tool", "tool_call_id": item["call_id"],
                "content": _text(item.get("output"), f"{path}.output")})


def _ignored_item(item: dict, path: str, out: list[dict]) -> None:
    """Reasoning items: clients echo the model's earlier reasoning; chat history carries none."""


ITEM_HANDLERS: dict[str, Callable[[dict, str, list[dict]], None]] = {
    "message": _message_item,
    "function_call": _function_call_item,
    "function_call_output": _function_call_output_item,
    "reasoning": _ignored_item,
}


def _text(content: Any, path: str) -> str:
    """A string, or text parts joined with no separator (what mlx_lm.server does with a list)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"`{path}` must be a string or a list of content parts", path)
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in TEXT_PART_TYPES:
            raise ProxyError("unsupported_content", f"content part type `{kind}` is not supported: the "
                             "upstream model reads text only", param=f"{path}[{j}]")
        if not isinstance(part.get("text"), str):
            raise invalid(f"`{path}[{j}].text` must be a string", f"{path}[{j}].text")
        texts.append(part["text"])
    return "".join(texts)


# --- tools ------------------------------------------------------------------------------------

def _tools(raw: Any) -> list[dict]:
    """Flat Responses function tools -> chat's nested `{"type", "function": {...}}`."""
    if not isinstance(raw, list):
        raise invalid("`tools` must be a list", "tools")
    out = []
    for i, tool in enumerate(raw):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise ProxyError("unsupported_content", f"tool type `{kind}` is not supported: only "
                             "`function` tools can run against a local model", param=f"tools[{i}].type")
        if not isinstance(tool.get("name"), str):
            raise invalid(f"`tools[{i}].name` must be a string", f"tools[{i}].name")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(raw: Any) -> str | dict:
    if isinstance(raw, str) and raw in TOOL_CHOICE_STRINGS:
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    raise ProxyError("unsupported_content", "`tool_choice` must be auto, none, required or "
                     "{\"type\": \"function\", \"name\": ...}", param="tool_choice")
