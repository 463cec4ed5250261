"""A JSON call with no marker as the message's tail: `{"name": ..., "arguments": {...}}`
(`"parameters"` for Llama 3.x), the original design's `{"tool": NAME, "arguments": {...}}`,
or a list of them. The arguments key is required, and the JSON must start a line and end the
message: JSON shown as an example, inside prose, is not a call."""
from ..calls import (COMPLETE, INVALID, DeclaredTools, RawCall, accept_calls, calls_from_json,
                     json_value_at, one_json_body_calls)


def viable(text: str, tools: DeclaredTools) -> bool:
    if text[:1] not in ("{", "["):
        return False
    status, value, end = json_value_at(text, 0)
    if status == INVALID:
        return False
    if status != COMPLETE:
        return True
    return not text[end:].strip() and accept_calls(calls_from_json(value, require_arguments=True), tools) is not None


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    return one_json_body_calls(text, require_arguments=True)
