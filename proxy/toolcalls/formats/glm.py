"""GLM 4.5 / 4.6 / 4.7 (and Poolside Laguna) calls:

    <tool_call>NAME
    <arg_key>KEY</arg_key>
    <arg_value>VALUE</arg_value>
    </tool_call>

Values are kept exactly as written (the template adds no padding) and typed by the schema.
"""
import re

from ..calls import DeclaredTools, RawCall, typed_value

START, END = "<tool_call>", "</tool_call>"

_ARG = re.compile(r"\s*<arg_key>(.*?)</arg_key>\s*<arg_value>(.*?)</arg_value>", re.S)
_NAME = re.compile(r"[\w.\-]+")


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    first = body.find("<arg_key>")
    name = (body if first < 0 else body[:first]).strip()
    if not _NAME.fullmatch(name):
        return None
    args = {}
    pos = len(body) if first < 0 else first
    while (m := _ARG.match(body, pos)) is not None:
        key = m.group(1).strip()
        args[key] = typed_value(m.group(2), tools.param_schema(name, key))
        pos = m.end()
    if body[pos:].strip():
        return None
    return [(name, args)]
