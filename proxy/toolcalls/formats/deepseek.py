"""DeepSeek V3 / R1 and V3.1 / V3.2 calls (fullwidth bars, U+2581 spaces in the tokens):

    V3:   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
          ```json
          {...}
          ```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
    V3.1: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜><｜tool▁calls▁end｜>
"""
import re

from ..arguments import arguments_object
from ..calls import COMPLETE, RawCall, json_value_at

START, END = "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"

_CALL = re.compile(r"<｜tool▁call▁begin｜>(.*?)<｜tool▁sep｜>(.*?)<｜tool▁call▁end｜>", re.S)
_V3_ARGS = re.compile(r"([\w.\-]+)\s*\n```(?:json)?\s*\n(.*)\n```\s*", re.S)


def _args(text: str) -> dict | None:
    status, value, end = json_value_at(text, 0)
    return arguments_object(value) if status == COMPLETE and not text[end:].strip() else None


def parse(body, tools) -> list[RawCall] | None:
    calls: list[RawCall] = []
    pos = 0
    for m in _CALL.finditer(body):
        if body[pos:m.start()].strip():
            return None
        kind, rest = m.group(1).strip(), m.group(2)
        if kind == "function" and (v3 := _V3_ARGS.fullmatch(rest.strip())):
            name, args = v3.group(1), _args(v3.group(2))
        else:
            name, args = kind, _args(rest)
        if args is None:
            return None
        calls.append((name, args))
        pos = m.end()
    return calls if calls and not body[pos:].strip() else None
