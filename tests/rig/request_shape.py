"""Request bodies of the real clients' shape, without the clients' own prose.

`reshape(body)` keeps everything that makes a request what it is (keys, roles, block types,
tool names and their JSON Schemas, ids, the billing-header line, the user's text, tool output,
sizes and line structure) and replaces the text the client's vendor wrote (system prompts,
system reminders, tool and parameter descriptions) with generated words of the same length,
line for line. `shape(body)` is the structure two requests must share to count as the same
kind. The committed fixtures in tests/fixtures/ were made with

    python -m tests.rig.request_shape CAPTURED.json tests/fixtures/NAME.json

from bodies captured between the real client and a recording server.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

# Everyday words for generated prose (the vendor's words never enter a fixture).
_WORDS = ("the", "model", "reads", "a", "file", "and", "writes", "short", "answers", "about", "code", "when",
          "asked", "tools", "run", "in", "order", "each", "result", "comes", "back", "to", "it", "user",
          "project", "before", "change", "test", "keep", "line", "work", "plan", "small", "step", "clear")
# Text kept as it is inside vendor prose: markup tags and the line's leading markdown.
_TAG = re.compile(r"<[^<>\n]{1,60}>")
_LEAD = re.compile(r"^[\s#>*\-\d.]*")
_REMINDER = re.compile(r"(<system-reminder>)(.*?)(</system-reminder>)", re.S)
_BILLING = re.compile(r"^x-anthropic-billing-header:")
# Keys whose string values are vendor prose wherever they appear in a tool definition.
_DESCRIPTION_KEYS = frozenset({"description"})
# Roles whose whole content is the vendor's.
_VENDOR_ROLES = frozenset({"system", "developer"})


def generated(text: str) -> str:
    """Words of the same length as `text`, line by line; tags and leading markdown are kept.
    Seeded by the text itself: the same prose in two captures becomes the same words."""
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    out = []
    for line in text.split("\n"):
        lead = _LEAD.match(line).group(0)
        pieces, pos = [lead], len(lead)
        for m in _TAG.finditer(line, pos):
            pieces.append(_words(m.start() - pos, rng))
            pieces.append(m.group(0))
            pos = m.end()
        pieces.append(_words(len(line) - pos, rng))
        out.append("".join(pieces))
    return "\n".join(out)


def _words(n: int, rng: random.Random) -> str:
    text = ""
    while len(text) < n:
        text += rng.choice(_WORDS) + " "
    return text[:n]


def _prose(text: str) -> str:
    if _BILLING.match(text):
        return re.sub(r"cch=[0-9a-f]+", "cch=00000", text)
    return generated(text)


def _reminders(text: str) -> str:
    """Only the system reminders inside a user's text or a tool's output are the vendor's."""
    return _REMINDER.sub(lambda m: m.group(1) + generated(m.group(2)) + m.group(3), text)


def reshape(body: Any) -> Any:
    def walk(value: Any, vendor: bool) -> Any:
        if isinstance(value, str):  # vendor: a system text; otherwise the user's or a tool's
            return _prose(value) if vendor else _reminders(value)
        if isinstance(value, list):
            return [walk(v, vendor) for v in value]
        if not isinstance(value, dict):
            return value
        out = {}
        role_is_vendor = value.get("role") in _VENDOR_ROLES
        for k, v in value.items():
            if k in ("system", "instructions"):
                out[k] = walk(v, True)
            elif k == "tools":
                out[k] = [_tool(t) for t in v] if isinstance(v, list) else v
            elif k in ("content", "text"):
                out[k] = walk(v, vendor or role_is_vendor)
            else:
                out[k] = walk(v, False)  # settings, ids, arguments, cache_control: kept
        return out

    def _tool(tool: Any) -> Any:
        """Names and schemas stay; every description in it is generated."""
        if isinstance(tool, dict):
            return {k: (_prose(v) if k in _DESCRIPTION_KEYS and isinstance(v, str) else _tool(v))
                    for k, v in tool.items()}
        if isinstance(tool, list):
            return [_tool(t) for t in tool]
        return tool

    return walk(body, False)


def shape(value: Any) -> Any:
    """The structure of a request: keys, block and item types, roles, tool names; not texts or
    numbers. Lists become the sorted set of their elements' shapes."""
    if isinstance(value, dict):
        return {k: (value[k] if k in ("type", "role") and isinstance(value[k], str) else shape(value[k]))
                for k in sorted(value)}
    if isinstance(value, list):
        shapes = {json.dumps(shape(v), sort_keys=True) for v in value}
        return sorted(shapes)
    return type(value).__name__


def client_shape(body: dict) -> dict:
    """The part of a request's shape the client alone decides: every field but the messages,
    whose assistant turns are what the model answered, and the kinds of block the client writes
    in user and system messages."""
    blocks: dict[str, set[str]] = {}
    for m in body.get("messages") or ():
        if m.get("role") == "assistant":
            continue
        content = m.get("content")
        kinds = {"string"} if isinstance(content, str) else {b.get("type", "?") for b in content or ()}
        blocks.setdefault(m.get("role", "?"), set()).update(kinds)
    return {"fields": shape({k: v for k, v in body.items() if k != "messages"}),
            "blocks": {role: sorted(kinds) for role, kinds in sorted(blocks.items())}}


def tool_names(body: dict) -> list[str]:
    return sorted(t.get("name") or t["function"]["name"] for t in body.get("tools") or ())


def load(name: str) -> dict:
    """A committed fixture: {"method", "path", "body", ...}."""
    return json.loads((FIXTURES / name).read_text())


if __name__ == "__main__":
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    captured = json.loads(source.read_text())
    if "body" in captured and isinstance(captured["body"], str):  # the recorder's form
        captured["body"] = json.loads(captured["body"])
    record = {k: captured[k] for k in ("method", "path") if k in captured}
    record["body"] = reshape(captured["body"])
    target.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
