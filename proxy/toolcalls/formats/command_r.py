"""Cohere Command R7B / Command A calls:
`<|START_ACTION|>[{"tool_call_id": "0", "tool_name": ..., "parameters": {...}}]<|END_ACTION|>`."""
from ..calls import one_json_body_calls

START, END = "<|START_ACTION|>", "<|END_ACTION|>"


def parse(body, tools):
    return one_json_body_calls(body)
