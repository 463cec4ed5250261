"""AI21 Jamba calls: `<tool_calls>[{"name": ..., "arguments": {...}}]</tool_calls>`."""
from ..calls import one_json_body_calls

START, END = "<tool_calls>", "</tool_calls>"


def parse(body, tools):
    return one_json_body_calls(body)
