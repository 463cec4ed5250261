"""MiniMax M2 calls:

    <minimax:tool_call>
    <invoke name="NAME">
    <parameter name="KEY">VALUE</parameter>
    </invoke>
    </minimax:tool_call>

Values are kept exactly as written and typed by the schema.
"""
import re

from ..calls import DeclaredTools, RawCall, still_open, typed_value

START, END = "<minimax:tool_call>", "</minimax:tool_call>"

_INVOKE = re.compile(r"\s*<invoke name=(\"[^\"]*\"|'[^']*'|[^\s>]+)\s*>(.*?)</invoke>", re.S)
_PARAM = re.compile(r"\s*<parameter name=(\"[^\"]*\"|'[^']*'|[^\s>]+)\s*>(.*?)</parameter>", re.S)


def unquote(name: str) -> str:
    return name[1:-1] if name[:1] in "\"'" and name[-1:] == name[:1] and len(name) > 1 else name


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return _invokes(body, tools) or still_open(body, "<invoke", "</invoke>")


def _invokes(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    calls: list[RawCall] = []
    pos = 0
    while (m := _INVOKE.match(body, pos)) is not None:
        name, inner, args, at = unquote(m.group(1)), m.group(2), {}, 0
        while (p := _PARAM.match(inner, at)) is not None:
            key = unquote(p.group(1))
            args[key] = typed_value(p.group(2), tools.param_schema(name, key))
            at = p.end()
        if inner[at:].strip():
            return None
        calls.append((name, args))
        pos = m.end()
    return calls if calls and not body[pos:].strip() else None
