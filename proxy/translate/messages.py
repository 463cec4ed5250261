"""Anthropic Messages (/v1/messages) requests -> the canonical chat completions request.

The chat request is the one a chat client would send for the same conversation (so both share a
cache entry): `system` becomes a leading system message, text blocks are joined into a string
(as mlx_lm.server joins a content list), `tool_use` blocks become assistant `tool_calls` with
compact JSON arguments, `tool_result` blocks become tool messages right after the assistant turn,
and thinking blocks are dropped (a chat history carries no reasoning). The upstream reads text
only: images and documents are refused with a 400 that says so.
`metadata`, `thinking`, `service_tier`, `cache_control` and unknown settings are not forwarded.
Rendering the result back lives in `messages_render` and `messages_stream`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..errors import ProxyError, invalid
from .messages_render import render_json
from .messages_stream import MessagesStreamRenderer

__all__ = ["to_chat", "render_json", "MessagesStreamRenderer", "estimate_tokens"]

# Blocks dropped from the history: earlier reasoning is not part of a chat conversation.
DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
# Anthropic tool_choice type -> chat tool_choice (`tool` names a function, built below).
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
# Tool types that run on Anthropic's servers; only custom (client-run) tools make sense here.
CUSTOM_TOOL_TYPES = frozenset({None, "custom"})
# System blocks are joined the way anyclaude's chat client joins them, so both hash alike.
SYSTEM_BLOCK_SEPARATOR = "\n"
# Shown to the model before a failed tool's output, since chat tool messages have no error flag.
TOOL_ERROR_PREFIX = "Error: "
# count_tokens estimate: ~4 characters per token for English and code with BPE vocabularies,
# plus a few template tokens per message (role markers, separators).
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def to_chat(body: dict) -> dict:
    """The chat completions request equivalent to a Messages request (ProxyError 400 if not)."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    messages: list[dict] = []
    if body.get("system") is not None:
        messages.append({"role": "system", "content": _system(body["system"])})
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise invalid("`messages` must be a list", "messages")
    for i, message in enumerate(raw):
        messages.extend(_message(message, f"messages[{i}]"))

    chat: dict[str, Any] = {"messages": messages}
    for name in ("model", "temperature", "top_p", "top_k", "stream"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_tokens") is not None:
        chat["max_completion_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    return chat


def _system(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise invalid("`system` must be a string or a list of text blocks", "system")
    texts = []
    for i, block in enumerate(raw):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise invalid(f"`system[{i}]` must be a text block", f"system[{i}]")
        texts.append(block["text"])
    return SYSTEM_BLOCK_SEPARATOR.join(texts)


def _message(message: Any, path: str) -> list[dict]:
    """One Anthropic message -> chat messages (a user turn with tool results yields several)."""
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise invalid(f"`{path}.role` must be user or assistant", f"{path}.role")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise invalid(f"`{path}.content` must be a string or a list of blocks", f"{path}.content")
    if message["role"] == "assistant":
        return [_assistant(content, f"{path}.content")]
    return _user(content, f"{path}.content")


def _sort_blocks(blocks: list, path: str, handlers: dict[str, Callable[[dict, str], Any]]) -> dict[str, list]:
    """Each block through the handler for its type, in order; thinking blocks are dropped and
    any other type is a 400 naming it."""
    out: dict[str, list] = {kind: [] for kind in handlers}
    for j, block in enumerate(blocks):
        where = f"{path}[{j}]"
        kind = _block_type(block, where)
        if kind in handlers:
            out[kind].append(handlers[kind](block, where))
        elif kind not in DROPPED_BLOCKS:
            raise _unsupported_block(kind, where)
    return out


def _assistant(blocks: list, path: str) -> dict:
    parts = _sort_blocks(blocks, path, {"text": _block_text, "tool_use": _tool_call})
    # "" rather than null for a tool-only turn: what anyclaude's chat client sends.
    out: dict = {"role": "assistant", "content": "".join(parts["text"])}
    if parts["tool_use"]:
        out["tool_calls"] = parts["tool_use"]
    return out


def _user(blocks: list, path: str) -> list[dict]:
    """Tool results first (chat requires them right after the assistant's calls), then the text."""
    parts = _sort_blocks(blocks, path, {"text": _block_text, "tool_result": _tool_result})
    results, texts = parts["tool_result"], parts["text"]
    if texts or not results:
        results.append({"role": "user", "content": "".join(texts)})
    return results


def _tool_call(block: dict, path: str) -> dict:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise invalid(f"`{path}` needs string `id` and `name`", path)
    args = block.get("input", {})
    if not isinstance(args, dict):
        raise invalid(f"`{path}.input` must be an object", f"{path}.input")
    # Compact JSON, key order kept: the shape model-written arguments have.
    arguments = orjson.dumps(args).decode()
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def _tool_result(block: dict, path: str) -> dict:
    if not isinstance(block.get("tool_use_id"), str):
        raise invalid(f"`{path}.tool_use_id` must be a string", f"{path}.tool_use_id")
    content = block.get("content", "")
    if isinstance(content, list):
        parts = []
        for k, inner in enumerate(content):
            kind = _block_type(inner, f"{path}.content[{k}]")
            if kind != "text":
                raise _unsupported_block(kind, f"{path}.content[{k}]")
            parts.append(_block_text(inner, f"{path}.content[{k}]"))
        content = "".join(parts)
    elif not isinstance(content, str):
        raise invalid(f"`{path}.content` must be a string or a list of text blocks", f"{path}.content")
    if block.get("is_error"):
        content = TOOL_ERROR_PREFIX + content
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}


def _block_type(block: Any, path: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid(f"`{path}` must be a content block with a `type`", path)
    return block["type"]


def _block_text(block: dict, path: str) -> str:
    if not isinstance(block.get("text"), str):
        raise invalid(f"`{path}.text` must be a string", f"{path}.text")
    return block["text"]


def _unsupported_block(kind: str, path: str) -> ProxyError:
    return ProxyError("unsupported_content", f"content block type `{kind}` is not supported: the "
                      "upstream model reads text only", param=path)


def _tools(raw: Any) -> list[dict]:
    if not isinstance(raw, list):
        raise invalid("`tools` must be a list", "tools")
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type") not in CUSTOM_TOOL_TYPES:
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise ProxyError("unsupported_content", f"tool type `{kind}` is not supported: only custom "
                             "tools (name + input_schema) run against a local model", param=f"tools[{i}].type")
        if not isinstance(tool.get("name"), str):
            raise invalid(f"`tools[{i}].name` must be a string", f"tools[{i}].name")
        fn: dict = {"name": tool["name"]}
        if tool.get("description") is not None:
            fn["description"] = tool["description"]
        if tool.get("input_schema") is not None:
            fn["parameters"] = tool["input_schema"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(raw: Any) -> str | dict:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in TOOL_CHOICES:
        return TOOL_CHOICES[kind]
    if kind == "tool" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    raise invalid("`tool_choice.type` must be auto, any, tool (with a name) or none", "tool_choice")


def estimate_tokens(chat_request: dict) -> int:
    """An estimate of the prompt's tokens for count_tokens when no tokenizer is at hand.

    Counts the characters of every message text, tool call and tool definition and divides by
    CHARS_PER_TOKEN; good to ~20% for English and code, enough for a client's context meter.
    """
    chars = 0
    messages = chat_request.get("messages") or []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            chars += len(fn.get("name") or "") + len(fn.get("arguments") or "")
    if chat_request.get("tools"):
        chars += len(orjson.dumps(chat_request["tools"]))
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)
