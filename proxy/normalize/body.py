"""Raw request bytes → a JSON object, with a 400 that says what is wrong.

orjson validates UTF-8 while parsing, so the common (valid) case costs one pass; only on failure
do we decode the bytes again to tell "not UTF-8" from "not JSON" for the error code.

What a body may cost is bounded before it is built: a 60 MB body of small arrays would be
millions of Python objects (1.5-3 GB) and minutes of walking, inside the byte limit. So the
structure is counted first, from the bytes (`check_structure`), and the nesting is checked
right after parsing (orjson itself stops at 1,024 levels; nothing here writes more than 255).
"""
from __future__ import annotations

import re

import orjson

from ..errors import ProxyError, invalid

# The most a request body may hold. Claude Code's 1 MB bodies hold ~3,000 arrays and objects,
# ~10 levels deep; a 1M-token prompt given as token ids is 1M values.
MAX_JSON_CONTAINERS = 250_000  # arrays and objects (each ~100-200 bytes once parsed)
MAX_JSON_ITEMS = 2_000_000  # values in arrays and members of objects
MAX_JSON_DEPTH = 128
# Below this size no body can break those limits: an array or object takes 2 bytes at least,
# an item 1 and its separator 1.
_SMALL_BODY = 2 * min(MAX_JSON_CONTAINERS, MAX_JSON_ITEMS)
_CONTAINERS = (dict, list)  # what orjson parses arrays and objects into

# The body in tokens for counting what lies outside its strings: either a run of bytes outside
# strings and of short strings free of brackets, commas and escapes (counting over the whole
# run counts only what is outside), or any other string, which is skipped. Runs are bounded
# (64 pieces) so one regex call never holds the interpreter for long; the two alternatives
# start with different bytes, so nothing backtracks beyond a 258-byte string.
_COUNTING_TOKEN = re.compile(rb"""
    (?P<run> (?: [^"]{1,65536} | "[^"\\\[{,]{0,256}" ){1,64} )
  | "[^"\\]*(?:\\.[^"\\]*)*"
""", re.VERBOSE)


def parse_body(raw: bytes | bytearray) -> dict:
    """Parse a request body; 400 invalid_encoding / invalid_json / invalid_request (not an
    object), 413 when its structure is beyond the limits above."""
    check_structure(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as enc:
            raise ProxyError("invalid_encoding",
                             f"request body is not valid UTF-8 (byte {enc.start})") from None
        raise ProxyError("invalid_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise invalid(f"request body must be a JSON object, not {type_name(body)}")
    if nesting_exceeds(body, MAX_JSON_DEPTH):
        raise ProxyError("invalid_json", f"request body is nested more than {MAX_JSON_DEPTH} deep")
    return body


def check_structure(raw: bytes | bytearray) -> None:
    """413 if the body holds more arrays, objects or items than the limits. Counting brackets
    and commas in the bytes is an upper bound (those inside strings count too) at memory
    speed; only a body over it is counted again, outside its strings."""
    if len(raw) < _SMALL_BODY or _within_limits(raw) or _within_limits_outside_strings(raw):
        return
    raise ProxyError("request_too_large", f"request body holds more JSON than the proxy accepts (at most "
                     f"{MAX_JSON_CONTAINERS:,} arrays and objects, {MAX_JSON_ITEMS:,} items)")


def _within_limits(raw: bytes | bytearray) -> bool:
    containers = raw.count(b"[") + raw.count(b"{")
    return containers <= MAX_JSON_CONTAINERS and raw.count(b",") + containers <= MAX_JSON_ITEMS


def _within_limits_outside_strings(raw: bytes | bytearray) -> bool:
    containers = items = 0
    for token in _COUNTING_TOKEN.finditer(raw):
        if token.lastgroup != "run":
            continue
        start, end = token.span()
        opened = raw.count(b"[", start, end) + raw.count(b"{", start, end)
        containers += opened
        items += opened + raw.count(b",", start, end)
        if containers > MAX_JSON_CONTAINERS or items > MAX_JSON_ITEMS:
            return False
    return True


def nesting_exceeds(value: object, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep (the body itself is level 1).
    Level by level, looking only at containers: a body's strings and numbers cost one type
    check each."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [child for node in level for child in (node.values() if type(node) is dict else node)
                 if type(child) in _CONTAINERS]
    return False


def type_name(value: object) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
