"""JSON calls with no marker as the message's tail: `{"name": ..., "arguments": {...}}`
(`"parameters"` for Llama 3.x), the original design's `{"tool": NAME, "arguments": {...}}`,
a list of them, or several such values one after another (on their own lines, or joined by `;`
as Llama 3 writes them). The arguments key is required, and
the JSON must start a line and end the message: JSON shown as an example, inside prose or
followed by prose, is not a call."""
from ..calls import COMPLETE, INVALID, DeclaredTools, RawCall, accept_calls, calls_from_json, json_value_at, skip_ws


def _values(text: str):
    """Yield (status, calls or None) for each JSON value in `text`, separated by whitespace."""
    pos = 0
    while True:
        status, value, end = json_value_at(text, pos)
        if status != COMPLETE:
            yield status, None
            return
        yield status, calls_from_json(value, require_arguments=True)
        pos = skip_ws(text, end)
        if pos < len(text) and text[pos] == ";":
            pos = skip_ws(text, pos + 1)
        if pos == len(text):
            return
        if text[pos] not in "{[":
            yield INVALID, None
            return


def viable(text: str, tools: DeclaredTools) -> bool:
    if text[:1] not in ("{", "["):
        return False
    for status, calls in _values(text):
        if status == INVALID or (status == COMPLETE and accept_calls(calls, tools) is None):
            return False
    return True


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    found: list[RawCall] = []
    for status, calls in _values(text):
        if status != COMPLETE or calls is None:
            return None
        found += calls
    return found or None
