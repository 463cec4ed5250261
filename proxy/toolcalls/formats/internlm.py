"""InternLM 2 / 2.5 calls: `<|action_start|><|plugin|>\n{"name": ..., "parameters": {...}}<|action_end|>`."""
from ..calls import json_block_calls

START, END = "<|action_start|><|plugin|>", "<|action_end|>"


def parse(body, tools):
    return json_block_calls(body)
