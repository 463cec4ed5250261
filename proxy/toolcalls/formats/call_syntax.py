"""The original design's call syntax as the message's tail: `NAME({"a": 1})`, NAME declared;
several in a row, on their own lines or joined by `;`. Also read inside `[Calling tool: ...]`
(calling_tool.py)."""
import re

from ..arguments import arguments_object
from ..calls import COMPLETE, INCOMPLETE, INVALID, DeclaredTools, RawCall, json_value_at, skip_ws

_NAME = re.compile(r"[A-Za-z_][\w.\-]*")


def read_calls(text: str, tools: DeclaredTools) -> tuple[str, list[RawCall]]:
    """(COMPLETE, calls) when `text` is nothing but such calls; INCOMPLETE when more text could
    still make it so; INVALID when nothing can."""
    calls: list[RawCall] = []
    pos = 0
    while True:
        m = _NAME.match(text, pos)
        if m is None:
            return (INCOMPLETE if pos == len(text) and calls == [] else INVALID), calls
        if m.end() == len(text):
            return (INCOMPLETE if tools.could_become_name(m.group()) else INVALID), calls
        if not tools.declared(m.group()) or text[m.end()] != "(":
            return INVALID, calls
        status, value, end = json_value_at(text, m.end() + 1)
        args = arguments_object(value) if status == COMPLETE and isinstance(value, dict) else None
        if status == INCOMPLETE:
            return INCOMPLETE, calls
        if args is None:
            return INVALID, calls
        close = skip_ws(text, end)
        if close == len(text):
            return INCOMPLETE, calls
        if text[close] != ")":
            return INVALID, calls
        calls.append((m.group(), args))
        pos = skip_ws(text, close + 1)
        if pos < len(text) and text[pos] == ";":
            pos = skip_ws(text, pos + 1)
        if pos == len(text):
            return COMPLETE, calls


def viable(text: str, tools: DeclaredTools) -> bool:
    return read_calls(text, tools)[0] != INVALID


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    status, calls = read_calls(text, tools)
    return calls if status == COMPLETE and calls else None
