"""A fenced block whose whole body is JSON calls, as the message's tail:

    ```json
    {"name": "Read", "arguments": {"file_path": "a.py"}}
    ```
"""
import re

from ..calls import (COMPLETE, INVALID, DeclaredTools, RawCall, accept_calls, calls_from_json,
                     json_value_at, one_json_body_calls)

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
    status, value, end = json_value_at(text, newline + 1)
    if status == INVALID:
        return False
    if status != COMPLETE:
        return True
    rest = text[end:].strip()
    closed = rest == FENCE or FENCE.startswith(rest)
    return closed and accept_calls(calls_from_json(value, require_arguments=True), tools) is not None


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    m = _BLOCK.fullmatch(text.strip())
    if m is None or m.group(1) not in _INFO_WORDS:
        return None
    return one_json_body_calls(m.group(2), require_arguments=True)
