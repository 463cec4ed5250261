"""Muse Spark calls:
`<atem:function_calls><atem:invoke name="NAME"><atem:parameter name="KEY">VALUE</atem:parameter></atem:invoke></atem:function_calls>`.
Values are typed by the schema."""
import re

from ..calls import DeclaredTools, RawCall, typed_value

START, END = "<atem:function_calls>", "</atem:function_calls>"

_INVOKE = re.compile(r"\s*<atem:invoke\b[^>]*?\bname=\"([^\"]+)\"[^>]*>(.*?)</atem:invoke>", re.S)
_PARAM = re.compile(r"\s*<atem:parameter\b[^>]*?\bname=\"([^\"]+)\"[^>]*>(.*?)</atem:parameter>", re.S)


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    calls: list[RawCall] = []
    pos = 0
    while (m := _INVOKE.match(body, pos)) is not None:
        name, inner, args, at = m.group(1), m.group(2), {}, 0
        while (p := _PARAM.match(inner, at)) is not None:
            args[p.group(1)] = typed_value(p.group(2), tools.param_schema(name, p.group(1)))
            at = p.end()
        if inner[at:].strip():
            return None
        calls.append((name, args))
        pos = m.end()
    return calls if calls and not body[pos:].strip() else None
