"""The original design's call syntax as the message's tail: `NAME({"a": 1})`, NAME declared."""
import re

from ..calls import (COMPLETE, INVALID, DeclaredTools, RawCall, arguments_object, json_value_at,
                     skip_ws)

_NAME = re.compile(r"[A-Za-z_][\w.\-]*")


def _split(text: str, tools: DeclaredTools):
    """(name, position after `(`) or None if this cannot be a call of a declared tool."""
    m = _NAME.match(text)
    if m is None or not tools.declared(m.group()) or not text.startswith("(", m.end()):
        return None
    return m.group(), m.end() + 1


def viable(text: str, tools: DeclaredTools) -> bool:
    m = _NAME.match(text)
    if m is not None and m.end() == len(text):
        return tools.could_become_name(text)
    head = _split(text, tools)
    if head is None:
        return False
    status, value, end = json_value_at(text, head[1])
    if status == INVALID or (status == COMPLETE and not isinstance(value, dict)):
        return False
    if status != COMPLETE:
        return True
    rest = text[skip_ws(text, end):].rstrip()
    return rest in ("", ")")


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    head = _split(text, tools)
    if head is None:
        return None
    status, value, end = json_value_at(text, head[1])
    if status != COMPLETE or text[skip_ws(text, end):].strip() != ")":
        return None
    args = arguments_object(value)
    return None if args is None else [(head[0], args)]
