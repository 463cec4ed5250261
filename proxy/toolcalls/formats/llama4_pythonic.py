"""Llama 4 pythonic calls between python tags: `<|python_start|>[NAME(a=1)]<|python_end|>`
(the same list without the tags is a tail format: pythonic_tail.py)."""
from .pythonic_tail import parse_pythonic

START, END = "<|python_start|>", "<|python_end|>"


def parse(body, tools):
    return parse_pythonic(body)
