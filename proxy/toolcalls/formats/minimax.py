"""MiniMax M2 calls:

    <minimax:tool_call>
    <invoke name="NAME">
    <parameter name="KEY">VALUE</parameter>
    </invoke>
    </minimax:tool_call>

Values are kept exactly as written and typed by the schema.
"""
import re

from ..calls import DeclaredTools, RawCall, invoke_calls, still_open

START, END = "<minimax:tool_call>", "</minimax:tool_call>"

_INVOKE = re.compile(r"\s*<invoke name=(\"[^\"]*\"|'[^']*'|[^\s>]+)\s*>(.*?)</invoke>", re.S)
_PARAM = re.compile(r"\s*<parameter name=(\"[^\"]*\"|'[^']*'|[^\s>]+)\s*>(.*?)</parameter>", re.S)


def unquote(name: str) -> str:
    return name[1:-1] if name[:1] in "\"'" and name[-1:] == name[:1] and len(name) > 1 else name


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return _invokes(body, tools) or still_open(body, "<invoke", "</invoke>")


def _invokes(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return invoke_calls(body, _INVOKE, _PARAM, tools, name_of=unquote)
