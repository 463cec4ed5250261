"""JSON calls inside `<tools>`: models imitating the `<tools></tools>` block of Hermes/Qwen
system prompts. The same block also holds echoed tool *definitions*, which are never calls
(calls.calls_from_json tells them apart)."""
from ..calls import json_sequence_calls

START, END = "<tools>", "</tools>"


def parse(body, tools):
    return json_sequence_calls(body.strip(), ";")
