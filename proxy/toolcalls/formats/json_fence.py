"""A fenced block whose whole body is JSON calls, as the message's tail:

    ```json
    {"name": "Read", "arguments": {"file_path": "a.py"}}
    ```

The body may also be one Hermes block (`<tool_call>{...}</tool_call>`, a model that fenced its
own call syntax).
"""
import re

from ..calls import (COMPLETE, INVALID, DeclaredTools, RawCall, accept_calls, calls_from_json, json_value_at,
                     one_json_body_calls, skip_ws)
from .hermes import END as HERMES_CLOSE
from .hermes import START as HERMES_OPEN

FENCE = "```"
_INFO_WORDS = ("", "json", "tool_call", "tool_calls")
_BLOCK = re.compile(r"```[ \t]*(\w*)[ \t]*\n(.*)\n[ \t]*```", re.S)


def viable(text: str, tools: DeclaredTools) -> bool:
    if len(text) < len(FENCE):
        return FENCE.startswith(text)
    if not text.startswith(FENCE):
        return False
    newline = text.find("\n")
    info = (text[3:] if newline < 0 else text[3:newline]).strip()
    if newline < 0:
        return any(w.startswith(info) for w in _INFO_WORDS)
    if info not in _INFO_WORDS:
        return False
    body_at = skip_ws(text, newline + 1)
    tagged = text.startswith(HERMES_OPEN, body_at)
    if not tagged and HERMES_OPEN.startswith(text[body_at:]) and body_at < len(text):
        return True  # the tag is still being written
    status, value, end = json_value_at(text, body_at + (len(HERMES_OPEN) if tagged else 0))
    if status == INVALID:
        return False
    if status != COMPLETE:
        return True
    rest = text[end:].strip()
    if tagged:
        if not HERMES_CLOSE.startswith(rest[:len(HERMES_CLOSE)]):
            return False
        rest = rest[len(HERMES_CLOSE):].strip()
    closed = rest == FENCE or FENCE.startswith(rest)
    return closed and accept_calls(calls_from_json(value, require_arguments=True), tools) is not None


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    m = _BLOCK.fullmatch(text.strip())
    if m is None or m.group(1) not in _INFO_WORDS:
        return None
    body = m.group(2).strip()
    if body.startswith(HERMES_OPEN) and body.endswith(HERMES_CLOSE):
        body = body[len(HERMES_OPEN):-len(HERMES_CLOSE)]
    return one_json_body_calls(body, require_arguments=True)
