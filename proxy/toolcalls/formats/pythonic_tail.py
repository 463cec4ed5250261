"""Pythonic calls as the message's tail (Llama 3.2 / 4, xLAM-style): `[NAME(a=1, b="x"), ...]`.
Read with `ast` (literals only, never evaluated); JSON's true/false/null are accepted too."""
import ast
import re

from ..calls import DeclaredTools, RawCall

_JSON_WORDS = {"true": True, "false": False, "null": None}
_OPENING = re.compile(r"\[\s*([A-Za-z_][\w.]*)?(\()?")


def _literal(node: ast.expr):
    if isinstance(node, ast.Name) and node.id in _JSON_WORDS:
        return _JSON_WORDS[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    return ast.literal_eval(node)


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and (parent := _name(func.value)):
        return f"{parent}.{func.attr}"
    return None


def parse_pythonic(text: str) -> list[RawCall] | None:
    """`[f(a=1), g()]` -> calls; None for anything else (positional arguments included)."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    tree = ast.parse(text, mode="eval").body
    if not isinstance(tree, ast.List) or not tree.elts:
        return None
    calls: list[RawCall] = []
    for node in tree.elts:
        if not isinstance(node, ast.Call) or node.args or (name := _name(node.func)) is None:
            return None
        if any(kw.arg is None for kw in node.keywords):
            return None
        calls.append((name, {kw.arg: _literal(kw.value) for kw in node.keywords}))
    return calls


def viable(text: str, tools: DeclaredTools) -> bool:
    m = _OPENING.match(text)
    if m is None:
        return False
    if m.end() == len(text) and not m.group(2):  # `[`, `[Rea`: the name is still being written
        return m.group(1) is None or tools.could_become_name(m.group(1))
    return bool(m.group(2)) and tools.declared(m.group(1))


def parse(text: str, tools: DeclaredTools) -> list[RawCall] | None:
    return parse_pythonic(text)
