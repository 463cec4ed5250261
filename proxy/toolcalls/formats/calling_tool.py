"""`[Calling tool: NAME({"a": 1})]`: how some chat templates render earlier calls in the
history, which models then imitate. The `]` may also stand inside the arguments (MORE)."""
from ..calls import COMPLETE, INCOMPLETE, MORE, DeclaredTools, RawCall
from .call_syntax import read_calls

START, END = "[Calling tool: ", "]"


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | object | None:
    status, calls = read_calls(body.strip(), tools)
    if status == INCOMPLETE and calls == [] and "(" in body:
        return MORE  # the `]` that closed the block was inside the arguments
    return calls if status == COMPLETE and len(calls) == 1 else None
