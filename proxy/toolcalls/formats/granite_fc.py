"""Granite 20B function-calling calls: `<function_call> {"name": ..., "arguments": {...}}`, each
call with its own marker and no end marker."""
from ..calls import json_sequence_calls, measure_json_sequence

START, END = "<function_call>", None


def measure(body, final):
    return measure_json_sequence(body, final)


def parse(body, tools):
    return json_sequence_calls(body)
