"""Phi-4-mini calls: `functools[{"name": ..., "arguments": {...}}]`, no end marker."""
from ..calls import json_sequence_calls, measure_json_sequence

START, END = "functools", None


def measure(body, final):
    if not body:
        return -1 if final else None
    if body[0] != "[":  # the word `functools` in prose or code
        return -1
    return measure_json_sequence(body, final)


def parse(body, tools):
    return json_sequence_calls(body)
