"""Cohere Command R7B / Command A calls:
`<|START_ACTION|>[{"tool_call_id": "0", "tool_name": ..., "parameters": {...}}]<|END_ACTION|>`."""
from ..calls import json_block_calls

START, END = "<|START_ACTION|>", "<|END_ACTION|>"


def parse(body, tools):
    return json_block_calls(body)
