"""gpt-oss (harmony) calls on the commentary channel:

    <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>

(The analysis channel is reasoning: see registry.REASONING_ZONES. The recipient may also come
first, see gpt_oss_recipient.py.)
"""
import re

from ..arguments import arguments_object
from ..calls import COMPLETE, RawCall, json_value_at

START, END = "<|channel|>commentary to=functions.", "<|call|>"

_HEAD = re.compile(r"([\w.\-]+)(?:[^<]|<\|channel\|>|<\|constrain\|>)*<\|message\|>", re.S)


def parse(body, tools) -> list[RawCall] | None:
    m = _HEAD.match(body)
    if m is None:
        return None
    status, value, end = json_value_at(body, m.end())
    args = arguments_object(value) if status == COMPLETE and not body[end:].strip() else None
    return None if args is None else [(m.group(1), args)]
