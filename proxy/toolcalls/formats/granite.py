"""IBM Granite 3.x calls: `<|tool_call|>[{"name": ..., "arguments": {...}}]`, no end marker."""
from ..calls import json_sequence_calls, measure_json_sequence

START, END = "<|tool_call|>", None


def measure(body, final):
    return measure_json_sequence(body, final)


def parse(body, tools):
    return json_sequence_calls(body)
