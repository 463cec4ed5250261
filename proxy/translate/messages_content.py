"""Anthropic messages -> chat messages, in conversation order (pure).

  * text blocks are joined into a string (as mlx_lm.server joins a content list);
  * `tool_use` blocks become assistant `tool_calls` with compact JSON arguments;
  * `tool_result` blocks become tool messages right after the assistant turn (chat requires it),
    before the user's text;
  * thinking blocks are dropped: a chat history carries no reasoning (this is also what
    context_management's `clear_thinking` edit asks for);
  * `role: "system"` messages (Claude Code 2.1, the mid-conversation-system beta): those before
    the first user or assistant message join the leading system message; a later one becomes
    text in a user turn, wrapped in `<system-reminder>` tags (Claude Code's own convention for
    system information inside user turns). It joins the user message before it when there is
    one, otherwise the user text after it (after that message's tool results), otherwise it
    stands as a user message of its own. Every chat template accepts that (many refuse a system
    message after the first position), roles keep alternating, and the conversation before it
    renders to the same tokens as on the previous turn, so the server's KV prefix cache holds.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ProxyError, invalid
from ..toolcalls.arguments import arguments_text
from .messages_tools import ConversationTools, chat_tool, definition_text

# Blocks dropped from the history (see above).
DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
# Leading system blocks are joined the way anyclaude's chat client joins them, so both hash alike.
SYSTEM_BLOCK_SEPARATOR = "\n"
# A later system message inside a user turn, and what separates it from the turn's own text.
REMINDER = "<system-reminder>\n{}\n</system-reminder>"
REMINDER_SEPARATOR = "\n"
# Shown to the model before a failed tool's output, since chat tool messages have no error flag.
TOOL_ERROR_PREFIX = "Error: "
# In place of a non-text block inside a tool result (Claude Code's Read of an image or a PDF):
# the upstream reads text only, and a 400 would fail every later turn of the session, since the
# block stays in the history. The model is told what it cannot see.
OMITTED_RESULT_BLOCK = "[{} omitted: the model reads text only]"
# How system-message tool changes are told to the model, at the point where they happen.
TOOL_ADDED = "Tool now available: {}"
TOOL_REMOVED = "Tool no longer available: {}"


class ChatConversation:
    """Feeds Anthropic messages in order; `chat_messages()` gives the chat conversation."""

    def __init__(self, tools: ConversationTools) -> None:
        self.tools = tools
        self._system: list[str] = []
        self._messages: list[dict] = []
        self._pending: list[str] = []  # reminders waiting for the next user text

    def add_system(self, raw: Any, path: str) -> None:
        """The top-level `system`, or a `role: "system"` message."""
        text = self._system_text(raw, path)
        if not text:
            return
        if not self._messages:
            self._system.append(text)
        elif self._messages[-1]["role"] == "user":
            last = self._messages[-1]
            last["content"] = _joined(last["content"], REMINDER.format(text))
        else:
            self._pending.append(REMINDER.format(text))

    def add_message(self, message: Any, path: str) -> None:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            self.add_system(message.get("content"), f"{path}.content")
            return
        if role not in ("user", "assistant"):
            raise invalid(f"`{path}.role` must be user, assistant or system", f"{path}.role")
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        elif not isinstance(content, list):
            raise invalid(f"`{path}.content` must be a string or a list of blocks", f"{path}.content")
        if role == "assistant":
            self._flush_pending()
            self._messages.append(self._assistant(content, f"{path}.content"))
        else:
            self._user(content, f"{path}.content")

    def chat_messages(self) -> list[dict]:
        self._flush_pending()
        head = [{"role": "system", "content": SYSTEM_BLOCK_SEPARATOR.join(self._system)}] if self._system else []
        return head + self._messages

    # --- turns ---------------------------------------------------------------------------------
    def _flush_pending(self) -> None:
        if self._pending:
            self._messages.append({"role": "user", "content": REMINDER_SEPARATOR.join(self._pending)})
            self._pending = []

    def _assistant(self, blocks: list, path: str) -> dict:
        parts = _sort_blocks(blocks, path, {"text": _block_text, "tool_use": _tool_call})
        # "" rather than null for a tool-only turn: what anyclaude's chat client sends.
        out: dict = {"role": "assistant", "content": "".join(parts["text"])}
        if parts["tool_use"]:
            out["tool_calls"] = parts["tool_use"]
        return out

    def _user(self, blocks: list, path: str) -> None:
        parts = _sort_blocks(blocks, path, {"text": _block_text, "tool_result": self._tool_result})
        self._messages.extend(parts["tool_result"])
        texts = self._pending + ["".join(parts["text"])] if parts["text"] else self._pending
        self._pending = []
        if texts or not parts["tool_result"]:
            self._messages.append({"role": "user", "content": REMINDER_SEPARATOR.join(texts)})

    # --- blocks --------------------------------------------------------------------------------
    def _tool_result(self, block: dict, path: str) -> dict:
        if not isinstance(block.get("tool_use_id"), str):
            raise invalid(f"`{path}.tool_use_id` must be a string", f"{path}.tool_use_id")
        content = block.get("content", "")
        if isinstance(content, list):
            content = "".join(self._result_part(inner, f"{path}.content[{k}]") for k, inner in enumerate(content))
        elif not isinstance(content, str):
            raise invalid(f"`{path}.content` must be a string or a list of blocks", f"{path}.content")
        if block.get("is_error"):
            content = TOOL_ERROR_PREFIX + content
        return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}

    def _result_part(self, block: Any, path: str) -> str:
        kind = _block_type(block, path)
        if kind == "text":
            return _block_text(block, path)
        if kind == "tool_reference":  # ToolSearch's answer: load the deferred tool
            name = _string_field(block, "tool_name", path)
            tool = self.tools.load(name) or {"type": "function", "function": {"name": name}}
            return definition_text(tool) + "\n"
        return OMITTED_RESULT_BLOCK.format(kind)

    def _system_text(self, raw: Any, path: str) -> str:
        if raw is None or isinstance(raw, str):
            return raw or ""
        if not isinstance(raw, list):
            raise invalid(f"`{path}` must be a string or a list of text blocks", path)
        lines = []
        for i, block in enumerate(raw):
            where = f"{path}[{i}]"
            kind = _block_type(block, where)
            if kind == "text":
                lines.append(_block_text(block, where))
            elif kind in ("tool_addition", "tool_removal"):
                lines.append(self._tool_change(kind, block, where))
            else:
                raise invalid(f"`{where}` must be a text block (or a tool_addition / tool_removal)", where)
        return SYSTEM_BLOCK_SEPARATOR.join(line for line in lines if line)

    def _tool_change(self, kind: str, block: dict, path: str) -> str:
        """A mid-conversation-tool-changes block: apply it, and say it in the conversation."""
        tool = block.get("tool")
        tool_kind = _block_type(tool, f"{path}.tool")
        if kind == "tool_removal":
            name = _string_field(tool, "name", f"{path}.tool")
            self.tools.remove(name)
            return TOOL_REMOVED.format(name)
        if tool_kind == "tool_definition":
            added = chat_tool(tool.get("definition"), f"{path}.tool.definition")
            self.tools.add(added)
        else:
            added = self.tools.load(_string_field(tool, "name", f"{path}.tool"))
        return TOOL_ADDED.format(definition_text(added)) if added is not None else ""


def _joined(text: str, reminder: str) -> str:
    return f"{text}{REMINDER_SEPARATOR}{reminder}" if text else reminder


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
            raise ProxyError("unsupported_content", f"content block type `{kind}` is not supported: the "
                             "upstream model reads text only", param=where)
    return out


def _tool_call(block: dict, path: str) -> dict:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise invalid(f"`{path}` needs string `id` and `name`", path)
    args = block.get("input", {})
    if not isinstance(args, dict):
        raise invalid(f"`{path}.input` must be an object", f"{path}.input")
    arguments = arguments_text(args)
    if arguments is None:
        raise invalid(f"`{path}.input` cannot be encoded as JSON", f"{path}.input")
    return {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}


def _block_type(block: Any, path: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise invalid(f"`{path}` must be a content block with a `type`", path)
    return block["type"]


def _block_text(block: dict, path: str) -> str:
    return _string_field(block, "text", path)


def _string_field(block: dict, name: str, path: str) -> str:
    if not isinstance(block.get(name), str):
        raise invalid(f"`{path}.{name}` must be a string", f"{path}.{name}")
    return block[name]
