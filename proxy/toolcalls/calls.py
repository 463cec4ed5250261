"""What every format shares: the declared tools, argument decoding, schema-typed values.

Formats turn text into `RawCall`s (a name and an arguments object); `accept_calls` is the one
place that decides whether those become real tool calls: every name must be declared exactly,
every arguments value must be an object that serializes to JSON. A block that fails is text.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .arguments import JSON_DECODER, arguments_object, arguments_text

RawCall = tuple[str, dict]

# raw_decode reports a truncated value's error within this many characters of the end
# (the longest unfinished token it can stop in front of is a `\uXXX` escape or `fals`).
_TRUNCATION_SLACK = 6

COMPLETE, INCOMPLETE, INVALID = "complete", "incomplete", "invalid"


class _More:
    def __repr__(self) -> str:
        return "MORE"


# What a format's `parse` answers when the END it was given lies inside the call (an argument
# holding the closing tag as text, e.g. a file that documents the format): look further.
MORE = _More()


class _Syntax:
    def __repr__(self) -> str:
        return "SYNTAX"


# What a format's `parse` answers for a block that is the format's own syntax and no call
# (Functionary's `>>>all` routing line before plain text): removed, not content.
SYNTAX = _Syntax()
# Keys of a tool *definition* (an echo of the prompt's tool list is not a call).
_DEFINITION_KEYS = frozenset({"description", "input_schema"})


def json_value_at(text: str, pos: int) -> tuple[str, Any, int]:
    """Read one JSON value at `pos` (after whitespace): (COMPLETE, value, end) or (INCOMPLETE |
    INVALID, None, pos). INCOMPLETE means more text could still complete it; it errs towards
    INCOMPLETE, so callers only ever lose time, never a call, when it is wrong."""
    n = len(text)
    while pos < n and text[pos] in " \t\r\n":
        pos += 1
    if pos >= n:
        return INCOMPLETE, None, pos
    try:
        value, end = JSON_DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as e:
        if e.msg.startswith("Unterminated string") or e.pos >= n - _TRUNCATION_SLACK:
            return INCOMPLETE, None, pos
        return INVALID, None, pos
    return COMPLETE, value, end


@dataclass(frozen=True)
class DeclaredTools:
    """The request's `tools`, indexed by exact function name."""
    functions: dict[str, dict]  # name -> JSON schema of its parameters ({} if none)

    @classmethod
    def from_openai(cls, tools: list[dict] | None) -> DeclaredTools | None:
        """Chat-completions tools; the flat Responses (`{"type": "function", "name", "parameters"}`)
        and Anthropic (`{"name", "input_schema"}`) shapes are read too. None: nothing declared."""
        functions: dict[str, dict] = {}
        for tool in tools or ():
            if not isinstance(tool, dict):
                continue
            fn = tool["function"] if isinstance(tool.get("function"), dict) else tool
            if isinstance(fn.get("name"), str) and fn["name"]:
                params = fn.get("parameters", fn.get("input_schema"))
                functions[fn["name"]] = params if isinstance(params, dict) else {}
        return cls(functions) if functions else None

    def declared(self, name: Any) -> bool:
        return isinstance(name, str) and name in self.functions

    def could_become_name(self, prefix: str) -> bool:
        """True if `prefix` is the start of (or equal to) a declared name."""
        return any(name.startswith(prefix) for name in self.functions)

    def param_schema(self, name: str, param: str) -> dict | None:
        props = self.functions.get(name, {}).get("properties")
        schema = props.get(param) if isinstance(props, dict) else None
        return schema if isinstance(schema, dict) else None


def calls_from_json(value: Any, *, require_arguments: bool = False) -> list[RawCall] | None:
    """JSON tool-call shapes models write: {"name", "arguments"|"parameters"},
    {"tool", "arguments"} (the original design), {"function": {...}} / OpenAI's
    {"type": "function", "function": {...}}, Command R's {"tool_name", "parameters"},
    llama.cpp's generic {"tool_call": {...}} and {"tool_calls": [...]}; or a non-empty list of
    them. `require_arguments` (marker-less formats): the arguments key must be present, so a
    bare {"name": "Read"} in a reply is never a call. An echoed tool definition (a
    description, or a JSON Schema where the arguments go) is never a call."""
    if isinstance(value, dict) and len(value) == 1:
        if isinstance(value.get("tool_call"), dict):
            value = value["tool_call"]
        elif isinstance(value.get("tool_calls"), list):
            value = value["tool_calls"]
    items = value if isinstance(value, list) else [value]
    if not items:
        return None
    calls: list[RawCall] = []
    for item in items:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):
            item = item["function"]
        if _is_definition(item):
            return None
        name = item.get("name", item.get("tool", item.get("tool_name")))
        keys = [k for k in ("arguments", "parameters") if k in item]
        if require_arguments and not keys:
            return None
        if len(keys) > 1:
            return None
        args = arguments_object(item.get(keys[0]) if keys else None)
        if not isinstance(name, str) or args is None:
            return None
        calls.append((name, args))
    return calls


def _is_definition(item: dict) -> bool:
    """A tool's definition as the prompt lists it, echoed: it describes, it does not call."""
    if _DEFINITION_KEYS & item.keys():
        return True
    schema = item.get("parameters", item.get("arguments"))
    return (isinstance(schema, dict) and schema.get("type") == "object"
            and isinstance(schema.get("properties"), dict))


def _schema_types(schema: dict | None) -> set[str]:
    if not schema:
        return set()
    types: set[str] = set()
    t = schema.get("type")
    if isinstance(t, str):
        types.add(t)
    elif isinstance(t, list):
        types.update(x for x in t if isinstance(x, str))
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key) or ():
            if isinstance(sub, dict):
                types |= _schema_types(sub)
    if not types and "enum" in schema:
        types.add("string")
    return types


def _as_integer(raw: str) -> Any:
    return int(raw.strip())


def _as_number(raw: str) -> Any:
    value = float(raw.strip())
    return int(value) if value.is_integer() and "." not in raw and "e" not in raw.lower() else value


def _as_boolean(raw: str) -> Any:
    word = raw.strip().lower()
    if word in ("true", "false"):
        return word == "true"
    raise ValueError(raw)


def _as_container(raw: str) -> Any:
    try:
        value = JSON_DECODER.decode(raw.strip())
    except json.JSONDecodeError:
        value = ast.literal_eval(raw.strip())  # models sometimes write Python literals
    if not isinstance(value, (dict, list)):
        raise ValueError(raw)
    return value


# Tried in this order; the first that converts the text wins, and text stays a string otherwise.
_CONVERTERS = (("integer", _as_integer), ("number", _as_number), ("boolean", _as_boolean),
               ("object", _as_container), ("array", _as_container))


def typed_value(raw: str, schema: dict | None) -> Any:
    """An XML-like format's parameter text as the JSON value its schema declares. A declared
    string (or an undeclared parameter) is kept byte for byte; a value that does not convert
    stays the string the model wrote (the client's validation reports it, we do not drop it)."""
    types = _schema_types(schema)
    if "null" in types and raw.strip() == "null":
        return None
    if not types or types == {"string"} or types == {"string", "null"}:
        return raw
    for type_name, convert in _CONVERTERS:
        if type_name in types:
            try:
                return convert(raw)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
    return raw


def invoke_calls(body: str, invoke: re.Pattern[str], param: re.Pattern[str], tools: DeclaredTools,
                 name_of: Callable[[str], str] = str) -> list[RawCall] | None:
    """XML-ish calls written as a run of `invoke` blocks (group 1 the name, group 2 the inner
    text) each holding `param` blocks (group 1 the key, group 2 the value, typed by the schema),
    nothing else around them; None if anything else is there."""
    calls: list[RawCall] = []
    pos = 0
    while (m := invoke.match(body, pos)) is not None:
        name = name_of(m.group(1))
        args = parameter_values(m.group(2), param, name, tools, name_of)
        if args is None:
            return None
        calls.append((name, args))
        pos = m.end()
    return calls if calls and not body[pos:].strip() else None


def parameter_values(inner: str, param: re.Pattern[str], name: str, tools: DeclaredTools,
                     name_of: Callable[[str], str] = str) -> dict | None:
    """A run of `param` blocks (nothing else) -> the arguments, typed by the schema."""
    args, at = {}, 0
    while (p := param.match(inner, at)) is not None:
        key = name_of(p.group(1))
        args[key] = typed_value(p.group(2), tools.param_schema(name, key))
        at = p.end()
    return None if inner[at:].strip() else args


def accept_calls(raw: list[RawCall] | object | None, tools: DeclaredTools) -> list[tuple[str, str]] | None:
    """(name, arguments JSON text) for every call, or None if any is not a declared tool with an
    object of arguments: a block is taken whole or left as text, never half."""
    if not isinstance(raw, list) or not raw:
        return None
    out = []
    for name, args in raw:
        text = arguments_text(args) if tools.declared(name) and isinstance(args, dict) else None
        if text is None:
            return None
        out.append((name, text))
    return out


def skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def measure_json_sequence(body: str, final: bool, separator: str | None = None) -> int | None:
    """`measure` for formats whose call is one JSON value, or values joined by `separator`
    (Llama's `;`): the length up to the last complete value (-1: none, None: cannot tell yet)."""
    end: int | None = None
    pos = 0
    while True:
        status, _, value_end = json_value_at(body, pos)
        if status == INVALID or (status == INCOMPLETE and final):
            return -1 if end is None else end
        if status == INCOMPLETE:
            return None
        end = value_end
        if separator is None:
            return end
        nxt = skip_ws(body, end)
        if nxt == len(body):
            return end if final else None
        if body[nxt] == separator:
            pos = nxt + 1
        elif body[nxt] in "{[" and nxt > end:  # values on their own lines, no separator
            pos = nxt
        else:
            return end


def json_sequence_calls(body: str, separator: str | None = None) -> list[RawCall] | None:
    """The calls in a body `measure_json_sequence` measured (nothing else may be in it)."""
    calls: list[RawCall] = []
    pos = 0
    while True:
        status, value, end = json_value_at(body, pos)
        found = calls_from_json(value) if status == COMPLETE else None
        if found is None:
            return None
        calls += found
        nxt = skip_ws(body, end)
        if nxt == len(body):
            return calls
        if separator is not None and body[nxt] == separator:
            pos = nxt + 1
        elif separator is not None and body[nxt] in "{[" and nxt > end:
            pos = nxt
        else:
            return None


def one_json_body_calls(body: str, *, require_arguments: bool = False) -> list[RawCall] | None:
    """A body that is exactly one JSON value (whitespace around it allowed) holding calls."""
    status, value, end = json_value_at(body, 0)
    if status != COMPLETE or body[end:].strip():
        return None
    return calls_from_json(value, require_arguments=require_arguments)


# A block closed by its END whose JSON lacks up to this many final `}` (a model that dropped
# the last brace of `{"name": ..., "arguments": {...}}`) is read as if it had them.
_MISSING_BRACES = 2


def json_block_calls(body: str):
    """A marker block's body that is one JSON value of calls; MORE when the JSON is still open
    (the END that closed the block was inside one of its strings)."""
    status, value, end = json_value_at(body, 0)
    if status == INCOMPLETE and body.strip():
        return _with_closing_braces(body) or MORE
    if status != COMPLETE or body[end:].strip():
        return None
    return calls_from_json(value)


def _with_closing_braces(body: str) -> list[RawCall] | None:
    """The calls of a JSON body that lacks only its last braces (never inside a string: a
    string left open cannot be closed by a brace, so the END stays inside it)."""
    for k in range(1, _MISSING_BRACES + 1):
        status, value, end = json_value_at(body.rstrip() + "}" * k, 0)
        if status == COMPLETE and end == len(body.rstrip()) + k:
            return calls_from_json(value)
        if status == INVALID:
            return None
    return None


def still_open(body: str, opening: str, closing: str):
    """MORE if the last `opening` tag in `body` has no `closing` tag after it (the block's END
    was read from inside a value), else None."""
    last = body.rfind(opening)
    return MORE if last >= 0 and body.find(closing, last) < 0 else None
