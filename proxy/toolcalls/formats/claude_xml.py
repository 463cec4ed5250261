"""Claude-style XML calls (Anthropic's prompt-based tool use, and the models distilled from it):

    <function_calls>
    <invoke name="NAME">
    <parameter name="KEY">VALUE</parameter>
    </invoke>
    </function_calls>

Several invokes per block; values are written raw (several lines, markup and all) and typed by
the schema, as MiniMax's identical invoke/parameter pair (minimax.py). Olmo 3 opens the same
block with pythonic lines instead (olmo3.py, tried after this one).
"""
from ..calls import DeclaredTools, RawCall, invoke_calls, still_open
from .minimax import _INVOKE, _PARAM, unquote

START, END = "<function_calls>", "</function_calls>"


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return invoke_calls(body, _INVOKE, _PARAM, tools, name_of=unquote) or still_open(body, "<invoke", "</invoke>")
