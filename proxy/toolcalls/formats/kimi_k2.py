"""Kimi K2 calls:

    <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:0<|tool_call_argument_begin|>{...}<|tool_call_end|><|tool_calls_section_end|>
"""
import re

from ..arguments import arguments_object
from ..calls import COMPLETE, RawCall, json_value_at

START, END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"

_CALL = re.compile(r"<\|tool_call_begin\|>(.*?)<\|tool_call_argument_begin\|>(.*?)<\|tool_call_end\|>", re.S)
_ID = re.compile(r"\s*(?:functions\.)?([\w.\-]+?)(?::\d+)?\s*")


def parse(body, tools) -> list[RawCall] | None:
    calls: list[RawCall] = []
    pos = 0
    for m in _CALL.finditer(body):
        ident = _ID.fullmatch(m.group(1))
        status, value, end = json_value_at(m.group(2), 0)
        args = arguments_object(value) if status == COMPLETE and not m.group(2)[end:].strip() else None
        if body[pos:m.start()].strip() or ident is None or args is None:
            return None
        calls.append((ident.group(1), args))
        pos = m.end()
    return calls if calls and not body[pos:].strip() else None
