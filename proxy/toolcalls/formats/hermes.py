"""Hermes / Qwen 2.5 / Qwen3 JSON calls: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`."""
from ..calls import json_block_calls

START, END = "<tool_call>", "</tool_call>"


def parse(body, tools):
    return json_block_calls(body)
