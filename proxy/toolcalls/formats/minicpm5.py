"""OpenBMB MiniCPM5 calls, no outer wrapper:
`<function name="NAME"><param name="KEY">VALUE</param></function>`; a value holding `<`, `&` or
newlines is wrapped in `<![CDATA[...]]>`. Values are typed by the schema."""
import re

from ..calls import DeclaredTools, RawCall, typed_value
from .minimax import unquote

START, END = "<function name=", "</function>"

_HEAD = re.compile(r"\s*(\"[^\"]*\"|'[^']*'|[^\s\"'<>]+)\s*>")
_PARAM = re.compile(r"\s*<param\s+name\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'<>]+)\s*>(.*?)</param>", re.S)
_CDATA = re.compile(r"\s*<!\[CDATA\[(.*?)\]\]>\s*", re.S)


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    head = _HEAD.match(body)
    if head is None:
        return None
    name, args, pos = unquote(head.group(1)), {}, head.end()
    while (m := _PARAM.match(body, pos)) is not None:
        cdata = _CDATA.fullmatch(m.group(2))
        key = unquote(m.group(1))
        args[key] = typed_value(cdata.group(1) if cdata else m.group(2), tools.param_schema(name, key))
        pos = m.end()
    return None if body[pos:].strip() else [(name, args)]
