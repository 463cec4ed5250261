"""Messages and tools: the shapes mlx_lm.server accepts, in one canonical form.

Copy-on-write: a message that is already canonical is passed through as the same object (the
common case for agent histories of hundreds of messages); only messages that change are
shallow-copied. The caller's dicts are never mutated.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import ProxyError, invalid
from ..toolcalls.arguments import arguments_object, arguments_text
from .body import type_name

# OpenAI roles → the role sent upstream; chat templates know `system`, not `developer`.
ROLE_MAP = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
            "tool": "tool", "function": "function"}
# Part types whose `text` the upstream can take (the Responses API names them input_/output_text).
TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
# Optional message fields that must be strings when present.
_STRING_FIELDS = ("name", "tool_call_id")

# Marks a field to delete from a message copy.
_REMOVE = object()

SystemTextRewrite = Callable[[str], tuple[str, tuple[str, ...]]]


def canonical_messages(messages: object, rewrite_system: SystemTextRewrite | None
                       ) -> tuple[list[dict], tuple[str, ...]]:
    """The canonical message list and the volatile rules that fired on system text."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty array", "messages")
    out: list[dict] = []
    fired: list[str] = []
    for i, message in enumerate(messages):
        changes = _message_changes(_object(message, f"messages[{i}]"), i)
        if rewrite_system is not None and changes.get("role", message["role"]) == "system":
            text = changes.get("content", message.get("content"))
            new_text, hits = rewrite_system(text)
            if hits:
                changes["content"] = new_text
                fired.extend(hit for hit in hits if hit not in fired)
        if changes:
            message = {**message, **changes}
            if message.get("tool_calls") is _REMOVE:
                del message["tool_calls"]
        out.append(message)
    return out, tuple(fired)


def _message_changes(message: dict, i: int) -> dict:
    """The fields of message `i` that differ from their canonical form."""
    changes: dict = {}
    role = message.get("role")
    canonical_role = ROLE_MAP.get(role) if isinstance(role, str) else None
    if canonical_role is None:
        raise invalid(f"messages[{i}].role must be one of {', '.join(ROLE_MAP)}; got {role!r}"
                      if isinstance(role, str) else f"messages[{i}].role is missing or not a string",
                      f"messages[{i}].role")
    if canonical_role != role:
        changes["role"] = canonical_role
    content = message.get("content")
    text = _content_text(content, i)
    if text is not content:
        changes["content"] = text
    for name in _STRING_FIELDS:
        value = message.get(name)
        if value is not None and not isinstance(value, str):
            raise invalid(f"messages[{i}].{name} must be a string, not {type_name(value)}",
                          f"messages[{i}].{name}")
    calls = message.get("tool_calls")
    if calls is None or calls == []:
        if "tool_calls" in message:
            changes["tool_calls"] = _REMOVE  # null and [] are no calls, as for the upstream
    else:
        canonical_calls = _tool_calls(calls, i)
        if canonical_calls is not calls:
            changes["tool_calls"] = canonical_calls
    return changes


def _content_text(content: object, i: int) -> str:
    """Message content as one string: null → "", text parts joined as the upstream joins them."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if not isinstance(content, list):
        raise invalid(f"messages[{i}].content must be a string or an array of parts, "
                      f"not {type_name(content)}", f"messages[{i}].content")
    texts: list[str] = []
    for j, part in enumerate(content):
        param = f"messages[{i}].content[{j}]"
        kind = _object(part, param).get("type")
        if not isinstance(kind, str) or kind not in TEXT_PART_TYPES:
            raise ProxyError("unsupported_content",
                             f"{param} has type {kind!r}; the served model accepts text parts only",
                             param=param)
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid(f"{param}.text must be a string, not {type_name(text)}", param)
        texts.append(text)
    return "".join(texts)


def _tool_calls(calls: object, i: int) -> list:
    """Assistant tool calls whose `function.arguments` are JSON strings holding an object.

    mlx_lm.server `json.loads` every arguments string and fails the whole request otherwise;
    arguments are re-serialized compactly so whitespace and escapes do not split the cache (the
    upstream parses them before rendering, so the prompt is unchanged).
    """
    if not isinstance(calls, list):
        raise invalid(f"messages[{i}].tool_calls must be an array, not {type_name(calls)}",
                      f"messages[{i}].tool_calls")
    out: list | None = None
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        call_id = _object(call, param).get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise invalid(f"{param}.id must be a string, not {type_name(call_id)}", f"{param}.id")
        function = _named_function(call, param)
        arguments = function.get("arguments")
        fixed = history_arguments(arguments, f"{param}.function.arguments")
        if fixed != arguments:
            if out is None:
                out = list(calls)
            out[j] = {**call, "function": {**function, "arguments": fixed}}
    return calls if out is None else out


def history_arguments(arguments: object, param: str) -> str:
    """A history call's arguments in the canonical text (proxy/toolcalls/arguments.py), repairing
    what can be repaired: an object (dumped), "" or null ("{}"), a JSON string of a JSON object
    string (decoded twice: some clients double-encode). Anything else is a 400 naming the message.
    """
    obj = arguments_object(arguments, layers=2)
    if obj is None:
        raise invalid(f"{param} must be a JSON object (or a string holding one)", param)
    text = arguments_text(obj)
    if text is None:  # (a parsed body always encodes: its depth was bounded before it was parsed)
        raise invalid(f"{param} cannot be re-encoded as JSON", param)
    return text


def canonical_tools(tools: object, field: str = "tools") -> list | None:
    """Declared tools, validated; None when there are none (the upstream treats [] as none)."""
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list):
        raise invalid(f"{field} must be an array, not {type_name(tools)}", field)
    for k, tool in enumerate(tools):
        param = f"{field}[{k}]"
        kind = _object(tool, param).get("type", "function")
        if kind != "function":
            raise ProxyError("unsupported_content",
                             f"{param} has type {kind!r}; only function tools are supported",
                             param=f"{param}.type")
        parameters = _named_function(tool, param).get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise invalid(f"{param}.function.parameters must be an object, not "
                          f"{type_name(parameters)}", f"{param}.function.parameters")
    return tools


def _object(value: object, param: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{param} must be an object, not {type_name(value)}", param)
    return value


def _named_function(holder: dict, param: str) -> dict:
    """`holder["function"]` (a tool or a tool call's), which must name the function."""
    function = _object(holder.get("function"), f"{param}.function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{param}.function.name must be a non-empty string", f"{param}.function.name")
    return function
