"""Functionary v3.2 calls: `>>>NAME\n{...}`; `>>>all\n` is its routing line before plain text:
syntax, removed from the content (the text after it stays). No end marker: the call ends
where its JSON ends."""
import re

from ..arguments import arguments_object
from ..calls import COMPLETE, INCOMPLETE, SYNTAX, json_value_at

START, END = ">>>", None

_NAME_LINE = re.compile(r"([\w.\-]+)[ \t]*\n")
# The recipient that means: plain text to the user.
_TEXT_RECIPIENT = "all"
_NAME_SO_FAR = re.compile(r"[\w.\-]*[ \t]*")


def measure(body, final):
    m = _NAME_LINE.match(body)
    if m is None:
        return None if not final and _NAME_SO_FAR.fullmatch(body) else -1
    if m.group(1) == _TEXT_RECIPIENT:
        return m.end()
    status, _, end = json_value_at(body, m.end())
    if status == COMPLETE:
        return end
    return None if status == INCOMPLETE and not final else -1


def parse(body, tools):
    m = _NAME_LINE.match(body)
    if m is not None and m.group(1) == _TEXT_RECIPIENT and m.end() == len(body):
        return SYNTAX
    status, value, end = json_value_at(body, m.end()) if m else (None, None, 0)
    args = arguments_object(value) if status == COMPLETE and not body[end:].strip() else None
    return None if args is None else [(m.group(1), args)]
