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

from ..calls import DeclaredTools, RawCall, typed_value

START, END = "<tool_call>", "</tool_call>"

_FUNCTION = re.compile(r"<function=([^>\n]+)>(.*?)</function>", re.S)
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
    calls: list[RawCall] = []
    pos = 0
    for m in _FUNCTION.finditer(body):
        if body[pos:m.start()].strip():
            return None
        name = m.group(1).strip()
        args = parameters(m.group(2), name, tools)
        if args is None:
            return None
        calls.append((name, args))
        pos = m.end()
    if body[pos:].strip():
        return None
    return calls or None
