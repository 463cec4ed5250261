"""Mistral calls after `[TOOL_CALLS]`: v3 JSON list `[{"name": ..., "arguments": {...}}]`, or
v11+ `NAME[ARGS]{...}` (optionally `NAME[CALL_ID]ID[ARGS]{...}`), repeatable. There is no end
marker: the call ends where its JSON ends."""
import re

from ..arguments import arguments_object
from ..calls import (COMPLETE, INCOMPLETE, INVALID, DeclaredTools, RawCall, json_value_at,
                     measure_json_sequence, one_json_body_calls, skip_ws)

START, END = "[TOOL_CALLS]", None

_HEADER = re.compile(r"([\w.\-]+)(?:\[CALL_ID\][\w\-]*)?\[ARGS\]")
_HEADER_SO_FAR = re.compile(r"[\w.\-\[\]]*")  # what a header can look like before it is whole


def _headers(body: str, final: bool):
    """Yield (name, value status, value, value end) for each `NAME[ARGS]{...}`, then a last
    (None, ...) item saying why the run stopped: ("more" | "done")."""
    pos = skip_ws(body, 0)
    while True:
        m = _HEADER.match(body, pos)
        if m is None:
            rest = body[pos:]
            yield None, ("more" if not final and _HEADER_SO_FAR.fullmatch(rest) else "done"), None, pos
            return
        status, value, end = json_value_at(body, m.end())
        yield m.group(1), status, value, end
        if status != COMPLETE:
            return
        pos = skip_ws(body, end)
        if pos == len(body):
            yield None, ("done" if final else "more"), None, pos
            return


def measure(body: str, final: bool) -> int | None:
    start = skip_ws(body, 0)
    if start == len(body):
        return -1 if final else None
    if body[start] == "[":
        return measure_json_sequence(body, final)
    end = -1
    for name, status, _, value_end in _headers(body, final):
        if name is None:
            return None if status == "more" else end
        if status == INVALID or (status == INCOMPLETE and final):
            return end
        if status == INCOMPLETE:
            return None
        end = value_end
    return end


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    if body.lstrip().startswith("["):
        return one_json_body_calls(body)
    calls: list[RawCall] = []
    for name, status, value, end in _headers(body, True):
        if name is None:
            return calls if end == len(body) and calls else None
        args = arguments_object(value) if status == COMPLETE else None
        if args is None:
            return None
        calls.append((name, args))
    return None
