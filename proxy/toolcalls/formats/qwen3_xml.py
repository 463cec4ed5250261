"""Qwen3-Coder XML calls inside `<tool_call>`:

    <tool_call>
    <function=NAME>
    <parameter=KEY>
    VALUE
    </parameter>
    </function>
    </tool_call>

The template puts one newline after `<parameter=K>` and one before `</parameter>`: exactly those
are removed, so an indented `old_string` survives byte for byte. Values are typed by the schema.
"""
import re

from ..calls import DeclaredTools, RawCall, still_open, typed_value

START, END = "<tool_call>", "</tool_call>"

_FUNCTION_OPEN = re.compile(r"<function=([^>\n]+)>")
_FUNCTION_CLOSE = "</function>"
_PARAM_OPEN = re.compile(r"<parameter=([^>\n]+)>")
_PARAM_CLOSE = "</parameter>"


def parameters(inner: str, name: str, tools: DeclaredTools) -> dict | None:
    """`<parameter=K>V</parameter>`... -> arguments; None if anything else is in between. A value
    runs to the last `</parameter>` before the next `<parameter=`, so it may contain the tag."""
    opens = list(_PARAM_OPEN.finditer(inner))
    if inner[:opens[0].start() if opens else len(inner)].strip():
        return None
    args = {}
    for k, m in enumerate(opens):
        segment = inner[m.end():opens[k + 1].start() if k + 1 < len(opens) else len(inner)]
        close = segment.rfind(_PARAM_CLOSE)
        if close < 0 or segment[close + len(_PARAM_CLOSE):].strip():
            return None
        value = segment[:close]
        value = value[1:] if value.startswith("\n") else value
        value = value[:-1] if value.endswith("\n") else value
        key = m.group(1).strip()
        args[key] = typed_value(value, tools.param_schema(name, key))
    return args


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return _functions(body, tools) or still_open(body, "<function=", "</function>")


def _functions(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    """Each function runs to the last `</function>` before the next `<function=`, so a value
    may hold the closing tags as text."""
    opens = list(_FUNCTION_OPEN.finditer(body))
    if not opens or body[:opens[0].start()].strip():
        return None
    calls: list[RawCall] = []
    for k, m in enumerate(opens):
        segment = body[m.end():opens[k + 1].start() if k + 1 < len(opens) else len(body)]
        close = segment.rfind(_FUNCTION_CLOSE)
        if close < 0 or segment[close + len(_FUNCTION_CLOSE):].strip():
            return None
        name = m.group(1).strip()
        args = parameters(segment[:close], name, tools)
        if args is None:
            return None
        calls.append((name, args))
    return calls
