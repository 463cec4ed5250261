"""GLM 4.5 / 4.6 / 4.7 (and Poolside Laguna) calls:

    <tool_call>NAME
    <arg_key>KEY</arg_key>
    <arg_value>VALUE</arg_value>
    </tool_call>

Values are kept exactly as written (the template adds no padding) and typed by the schema.
"""
import re

from ..calls import DeclaredTools, RawCall, still_open, typed_value

START, END = "<tool_call>", "</tool_call>"

_NAME = re.compile(r"[\w.\-]+")


def key_value_call(body: str, tools: DeclaredTools, key_tag: str, value_tag: str) -> list[RawCall] | None:
    """NAME then <KEY_TAG>k</KEY_TAG><VALUE_TAG>v</VALUE_TAG> pairs (GLM's shape, also LongCat's)."""
    pair = re.compile(rf"\s*<{key_tag}>(.*?)</{key_tag}>\s*<{value_tag}>(.*?)</{value_tag}>", re.S)
    first = body.find(f"<{key_tag}>")
    name = (body if first < 0 else body[:first]).strip()
    if not _NAME.fullmatch(name):
        return None
    args = {}
    pos = len(body) if first < 0 else first
    while (m := pair.match(body, pos)) is not None:
        key = m.group(1).strip()
        args[key] = typed_value(m.group(2), tools.param_schema(name, key))
        pos = m.end()
    if body[pos:].strip():
        return None
    return [(name, args)]


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return key_value_call(body, tools, "arg_key", "arg_value") or still_open(body, "<arg_value>", "</arg_value>")
