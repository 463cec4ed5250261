"""Gemma 4 calls: `<|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>`."""
from .gemma_args import parse_gemma_calls

START, END = "<|tool_call>", "<tool_call|>"


def parse(body, tools):
    return parse_gemma_calls(body, '<|"|>')
