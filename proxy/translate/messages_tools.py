"""The tools of an Anthropic Messages conversation, as the chat request needs them.

Claude Code 2.1 declares most of its tools with `defer_loading: true` and loads them on demand:
its ToolSearch tool answers with `tool_reference` blocks, and the API expands each into the
tool's definition. The mid-conversation-tool-changes beta adds and removes tools with
`tool_addition` / `tool_removal` blocks inside system messages. Both exist so that the prompt
before the change stays the same (Anthropic's prompt cache); the local analogue is
mlx_lm.server's KV prefix cache, so the same rule holds here:

  * the tools the chat template renders (the system prompt) are the declared tools that are not
    deferred, and they never change during a conversation;
  * a tool loaded or added later is written into the conversation where that happened, as its
    chat-shape JSON definition, and joins the tools the model may call (the extractor's list);
  * a removed tool stops being callable; the template still lists it (changing the system
    prompt would cost a full prefill), and a later call to it stays text.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from ..errors import ProxyError, invalid

# Tool types that run on Anthropic's servers (web search, code execution, ...) or that only
# Claude models are trained on (bash_2025..., text_editor_...): a local model cannot use them.
# Only custom (client-run, name + input_schema) tools are accepted.
CUSTOM_TOOL_TYPES = frozenset({None, "custom"})
# Anthropic tool_choice type -> chat tool_choice (`tool` names a function, built below).
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def chat_tool(tool: Any, path: str) -> dict:
    """One Anthropic tool definition -> the chat (OpenAI) shape; 400 for a non-custom tool.

    Only name, description and input_schema reach the model. Left out on purpose:
    `cache_control` (prompt-cache breakpoints: the server's KV cache needs none), `strict`
    (constrained decoding the upstream does not do; the extractor still checks the JSON),
    `input_examples`, `eager_input_streaming`, `allowed_callers` (betas for Claude's own
    training and Anthropic's servers), `defer_loading` (read by ConversationTools).
    """
    if not isinstance(tool, dict) or tool.get("type") not in CUSTOM_TOOL_TYPES:
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise ProxyError("unsupported_content", f"tool type `{kind}` is not supported: only custom "
                         "tools (name + input_schema) run against a local model", param=f"{path}.type")
    if not isinstance(tool.get("name"), str):
        raise invalid(f"`{path}.name` must be a string", f"{path}.name")
    fn: dict = {"name": tool["name"]}
    if tool.get("description") is not None:
        fn["description"] = tool["description"]
    if tool.get("input_schema") is not None:
        fn["parameters"] = tool["input_schema"]
    return {"type": "function", "function": fn}


def definition_text(tool: dict) -> str:
    """How a tool loaded mid-conversation is written into the conversation: its chat-shape JSON,
    the form chat templates list tools in."""
    return orjson.dumps(tool).decode()


class ConversationTools:
    """Declared tools and how the conversation changes them, read in conversation order."""

    def __init__(self, raw: Any) -> None:
        if raw is not None and not isinstance(raw, list):
            raise invalid("`tools` must be a list", "tools")
        self.rendered: list[dict] = []  # what the chat template lists (not deferred)
        self._deferred: dict[str, dict] = {}
        for i, tool in enumerate(raw or ()):
            converted = chat_tool(tool, f"tools[{i}]")
            if tool.get("defer_loading") is True:
                self._deferred[converted["function"]["name"]] = converted
            else:
                self.rendered.append(converted)
        self._callable: dict[str, dict] = {t["function"]["name"]: t for t in self.rendered}

    def load(self, name: str) -> dict | None:
        """A `tool_reference` to `name`: it becomes callable; its definition (None if unknown)."""
        tool = self._deferred.get(name) or self._known(name)
        if tool is not None:
            self._callable[name] = tool
        return tool

    def add(self, tool: dict) -> None:
        self._callable[tool["function"]["name"]] = tool

    def remove(self, name: str) -> None:
        self._callable.pop(name, None)

    def _known(self, name: str) -> dict | None:
        return next((t for t in self.rendered if t["function"]["name"] == name), None)

    def callable_tools(self) -> list[dict] | None:
        """The tools the model may call at the end of the conversation, when that differs from
        what the template lists (None: the same)."""
        now = list(self._callable.values())
        return None if _names(now) == _names(self.rendered) else now


def _names(tools: Iterable[dict]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def tool_choice(raw: Any) -> str | dict:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in TOOL_CHOICES:
        return TOOL_CHOICES[kind]
    if kind == "tool" and isinstance(raw.get("name"), str):
        return {"type": "function", "function": {"name": raw["name"]}}
    raise invalid("`tool_choice.type` must be auto, any, tool (with a name) or none", "tool_choice")
