"""`<function name="NAME">...</function>`: the name as an attribute, the arguments as a JSON
object or as `<parameter name="KEY">VALUE</parameter>` children (typed by the schema)."""
import re

from ..arguments import arguments_object
from ..calls import COMPLETE, DeclaredTools, RawCall, json_value_at, parameter_values, still_open
from .minimax import _PARAM, unquote

START, END = "<function name=", "</function>"

_HEAD = re.compile(r"(\"[^\"\n]*\"|'[^'\n]*'|[^\s>]+)\s*>", re.S)


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    m = _HEAD.match(body)
    if m is None:
        return None
    name, inner = unquote(m.group(1)), body[m.end():]
    if inner.lstrip().startswith("{"):
        status, value, end = json_value_at(inner, 0)
        args = arguments_object(value) if status == COMPLETE and not inner[end:].strip() else None
    else:
        args = parameter_values(inner, _PARAM, name, tools, name_of=unquote)
    if args is None:
        return still_open(inner, "<parameter", "</parameter>")
    return [(name, args)]
