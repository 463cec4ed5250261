"""Olmo 3 calls: pythonic calls, one per line, inside `<function_calls>` (vLLM's olmo3 parser);
JSON's true/false/null are accepted as values.

    <function_calls>
    get_weather(city="Paris")
    search(query="hotels")
    </function_calls>
"""
from ..calls import RawCall
from .pythonic_tail import parse_pythonic

START, END = "<function_calls>", "</function_calls>"


def parse(body: str, tools) -> list[RawCall] | None:
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    return parse_pythonic("[" + ", ".join(lines) + "]") if lines else None
