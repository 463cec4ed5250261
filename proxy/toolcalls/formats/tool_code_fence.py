"""Gemma 3's documented call style, as the message's tail: a `tool_code` fence holding one
Python call with keyword arguments (optionally wrapped in `print(...)`):

    ```tool_code
    get_weather(city="Paris")
    ```
"""
import ast
import re

from ..calls import DeclaredTools, RawCall
from .pythonic_tail import parse_pythonic

_OPEN = "```tool_code"
_BLOCK = re.compile(r"```tool_code[ \t]*\n(.*)\n[ \t]*```", re.S)


def viable(text: str, tools: DeclaredTools) -> bool:
    if not (text.startswith(_OPEN) or _OPEN.startswith(text)):
        return False
    close = text.find("\n```", len(_OPEN))
    return close < 0 or not text[close + 4:].strip()


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    m = _BLOCK.fullmatch(text.strip())
    if m is None:
        return None
    node = ast.parse(m.group(1).strip(), mode="eval").body
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" \
            and len(node.args) == 1 and not node.keywords:
        node = node.args[0]
    return parse_pythonic("[" + ast.unparse(node) + "]") if isinstance(node, ast.Call) else None
