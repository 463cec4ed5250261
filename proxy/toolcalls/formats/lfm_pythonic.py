"""Liquid LFM2 pythonic calls: `<|tool_call_start|>[NAME(a=1)]<|tool_call_end|>`."""
from .pythonic_tail import parse_pythonic

START, END = "<|tool_call_start|>", "<|tool_call_end|>"


def parse(body, tools):
    return parse_pythonic(body)
