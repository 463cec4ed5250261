"""Help text for each setting, read from the comments above its field in `proxy/config.py`.

The reason beside each limit is written once, in config.py; `--help` shows that same text
instead of a second copy that would drift.
"""
from __future__ import annotations

import ast
import inspect
from functools import cache

from . import config


@cache
def field_help() -> dict[str, str]:
    """Settings field name -> the comment block right above it (may be empty)."""
    source = inspect.getsource(config)
    lines = source.splitlines()
    tree = ast.parse(source)
    settings = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    out: dict[str, str] = {}
    for node in settings.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        comment: list[str] = []
        i = node.lineno - 2  # the line above the field (0-based)
        while i >= 0 and lines[i].strip().startswith("#") and not lines[i].strip().startswith("# ---"):
            comment.insert(0, lines[i].strip().lstrip("#").strip())
            i -= 1
        trailing = lines[node.lineno - 1].partition("#")[2].strip()
        out[node.target.id] = " ".join(comment + ([trailing] if trailing else []))
    return out
