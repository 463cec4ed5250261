"""AI21 Jamba calls: `<tool_calls>[{"name": ..., "arguments": {...}}]</tool_calls>`."""
from ..calls import json_block_calls

START, END = "<tool_calls>", "</tool_calls>"


def parse(body, tools):
    return json_block_calls(body)
