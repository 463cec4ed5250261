"""FunctionGemma calls: `<start_function_call>call:NAME{key:<escape>text<escape>,n:1}<end_function_call>`."""
from .gemma_args import parse_gemma_calls

START, END = "<start_function_call>", "<end_function_call>"


def parse(body, tools):
    return parse_gemma_calls(body, "<escape>")
