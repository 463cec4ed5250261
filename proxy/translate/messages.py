"""Anthropic Messages (/v1/messages) requests -> the canonical chat completions request.

The chat request is the one a chat client would send for the same conversation (so both share a
cache entry). Messages and blocks are converted in `messages_content`, tools in
`messages_tools`; this module decides what happens to every top-level field (the tables below,
each with its reason: what Claude Code 2.0 and 2.1 send, recorded from the real clients).
Rendering the result back lives in `messages_render` and `messages_stream`.
"""
from __future__ import annotations

import logging
from typing import Any

from ..errors import ProxyError, invalid
from ..normalize import CALLABLE_TOOLS_FIELD
from .messages_content import ChatConversation
from .messages_render import render_json
from .messages_stream import MessagesStreamRenderer
from .messages_tools import ConversationTools, tool_choice

__all__ = ["to_chat", "render_json", "MessagesStreamRenderer"]

log = logging.getLogger(__name__)

# Fields copied into the chat request as they are (the chat names are the same).
COPIED_FIELDS = ("model", "temperature", "top_p", "top_k", "stream")
# Fields read below (renamed, converted, or read by the renderers).
READ_FIELDS = frozenset({*COPIED_FIELDS, "messages", "system", "max_tokens", "stop_sequences", "tools",
                         "tool_choice", "thinking", "context_management", "output_config"})
# Accepted and left out, because they cannot change what the model writes here.
IGNORED_FIELDS = {
    "metadata": "user_id for Anthropic's abuse tracking",
    "cache_control": "prompt-cache breakpoints: mlx_lm.server's KV prefix cache needs none "
                     "(on blocks, messages and tools as well, with or without `ttl`)",
    "service_tier": "capacity tiers of Anthropic's service; there is one local server",
    "inference_geo": "where Anthropic runs the request",
    "speed": "Anthropic's fast mode; the local model has one speed",
}
# Refused with a 400: honouring them would change the answer, and the proxy cannot.
REFUSED_FIELDS = {
    "container": "code-execution containers run on Anthropic's servers",
    "mcp_servers": "the MCP connector runs on Anthropic's servers",
    "output_format": "structured outputs need constrained decoding, which the upstream does not do",
}
# context_management edits: clearing earlier thinking is what the proxy always does (a chat
# history carries no reasoning); other edits (clearing tool results, compaction) would change
# the prompt in ways the proxy does not reproduce.
HONOURED_EDIT_PREFIXES = ("clear_thinking_",)
# output_config keys: `effort` tunes how long Claude thinks; a local model has one behaviour
# (a hint, not a constraint, so ignoring it is not a wrong answer). `format` is structured output.
IGNORED_OUTPUT_CONFIG = frozenset({"effort"})
# Unknown fields (a newer client) are ignored, and each is logged once so it gets looked at.
_logged_unknown: set[str] = set()


def to_chat(body: dict) -> dict:
    """The chat completions request equivalent to a Messages request (ProxyError 400 if not)."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    _check_fields(body)
    raw = body.get("messages")
    if not isinstance(raw, list):
        raise invalid("`messages` must be a list", "messages")
    tools = ConversationTools(body.get("tools"))
    conversation = ChatConversation(tools)
    conversation.add_system(body.get("system"), "system")
    for i, message in enumerate(raw):
        conversation.add_message(message, f"messages[{i}]")
    messages = conversation.chat_messages()
    if not any(m["role"] != "system" for m in messages):
        raise invalid("`messages` needs at least one user or assistant message", "messages")

    chat: dict[str, Any] = {"messages": messages}
    for name in COPIED_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_tokens") is not None:
        chat["max_completion_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    if tools.rendered:
        chat["tools"] = tools.rendered
    callable_tools = tools.callable_tools()
    if callable_tools is not None:
        chat[CALLABLE_TOOLS_FIELD] = callable_tools
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = tool_choice(body["tool_choice"])
    return chat


def _check_fields(body: dict) -> None:
    for name in body:
        if name in REFUSED_FIELDS:
            raise ProxyError("unsupported_content", f"`{name}` is not supported: {REFUSED_FIELDS[name]}", param=name)
        if name not in READ_FIELDS and name not in IGNORED_FIELDS and name not in _logged_unknown:
            _logged_unknown.add(name)
            log.info("ignoring the Messages field `%s`, new to this proxy", name)
    edits = _object(body, "context_management").get("edits") or []
    if not isinstance(edits, list):
        raise invalid("`context_management.edits` must be a list", "context_management.edits")
    for i, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not isinstance(kind, str) or not kind.startswith(HONOURED_EDIT_PREFIXES):
            raise ProxyError("unsupported_content", f"context_management edit `{kind}` is not supported: "
                             "only clearing earlier thinking is done here", param=f"context_management.edits[{i}]")
    for name in _object(body, "output_config"):
        if name not in IGNORED_OUTPUT_CONFIG:
            why = REFUSED_FIELDS["output_format"] if name == "format" else "the local model has no such setting"
            raise ProxyError("unsupported_content", f"`output_config.{name}` is not supported: {why}",
                             param=f"output_config.{name}")


def _object(body: dict, name: str) -> dict:
    value = body.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"`{name}` must be an object", name)
    return value
