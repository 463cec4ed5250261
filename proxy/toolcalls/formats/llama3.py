"""Llama 3.1 / 3.2 / 3.3 JSON calls after `<|python_tag|>`: `{"name": ..., "parameters": {...}}`,
several joined by `;`. No end marker (the turn ends with `<|eom_id|>`, a special token)."""
from ..calls import json_sequence_calls, measure_json_sequence

START, END = "<|python_tag|>", None


def measure(body, final):
    return measure_json_sequence(body, final, ";")


def parse(body, tools):
    return json_sequence_calls(body, ";")
