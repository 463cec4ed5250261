"""Liquid LFM2 calls: `<|tool_call_start|>[NAME(a=1)]<|tool_call_end|>`, pythonic as its template
shows, or the same list written as JSON calls (`[{"name": ..., "arguments": {...}}]`)."""
from ..calls import json_block_calls
from .pythonic_tail import parse_pythonic

START, END = "<|tool_call_start|>", "<|tool_call_end|>"


def parse(body, tools):
    if body.lstrip().startswith("[{"):
        return json_block_calls(body)
    return parse_pythonic(body)
