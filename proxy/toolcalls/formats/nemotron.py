"""NVIDIA Nemotron (Nano v2) calls: a JSON array inside `<TOOLCALL>`:

    <TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>
"""
from ..calls import json_block_calls

START, END = "<TOOLCALL>", "</TOOLCALL>"


def parse(body, tools):
    return json_block_calls(body)
