"""InternLM 2 / 2.5 calls: `<|action_start|><|plugin|>\n{"name": ..., "parameters": {...}}<|action_end|>`."""
from ..calls import one_json_body_calls

START, END = "<|action_start|><|plugin|>", "<|action_end|>"


def parse(body, tools):
    return one_json_body_calls(body)
