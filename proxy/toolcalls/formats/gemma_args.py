"""Gemma's call syntax `call:NAME{key:VALUE,...}`: bare keys, strings between a delimiter token
(`<escape>` for FunctionGemma, `<|"|>` for Gemma 4), JSON-like numbers, booleans, lists, objects.
A small recursive reader (shared by the two Gemma format files, not a format itself)."""
import json
import re

from ..calls import RawCall

_CALL = re.compile(r"\s*call:([\w.\-]+)\s*")
_KEY = re.compile(r"\s*([\w.\-]+|\"[^\"]*\")\s*:")
_BARE = re.compile(r"[^,}\]]*")


def _value(s: str, i: int, quote: str):
    while i < len(s) and s[i].isspace():
        i += 1
    if s.startswith(quote, i):
        j = s.index(quote, i + len(quote))
        return s[i + len(quote):j], j + len(quote)
    if s.startswith("{", i):
        return _object(s, i, quote)
    if s.startswith("[", i):
        items, i = [], i + 1
        while True:
            while i < len(s) and s[i].isspace():
                i += 1
            if s.startswith("]", i):
                return items, i + 1
            item, i = _value(s, i, quote)
            items.append(item)
            while i < len(s) and s[i].isspace():
                i += 1
            if s.startswith(",", i):
                i += 1
    token = _BARE.match(s, i).group()
    try:
        return json.loads(token.strip()), i + len(token)
    except json.JSONDecodeError:
        return token.strip(), i + len(token)


def _object(s: str, i: int, quote: str):
    out, i = {}, i + 1
    while True:
        while i < len(s) and s[i] in " \t\r\n,":
            i += 1
        if s.startswith("}", i):
            return out, i + 1
        m = _KEY.match(s, i)
        if m is None:
            raise ValueError("expected a key")
        value, i = _value(s, m.end(), quote)
        out[m.group(1).strip('"')] = value


def parse_gemma_calls(body: str, quote: str) -> list[RawCall] | None:
    calls: list[RawCall] = []
    pos = 0
    while (m := _CALL.match(body, pos)) is not None:
        if not body.startswith("{", m.end()):
            return None
        args, pos = _object(body, m.end(), quote)
        calls.append((m.group(1), args))
    return calls if calls and not body[pos:].strip() else None
