"""The one rule for tool-call arguments, wherever they come from or go: a JSON object, written as
compact JSON with its key order kept and non-ASCII text as is.

Why one rule: the same call reaches the proxy from a model's text, from the upstream's own
parser (mlx_lm.server `json.dumps()`es with spaces), from a client's history (OpenAI's string,
Anthropic's object) and from a stream's fragments. If each wrote its own JSON, one message could
carry `{"city": "Oslo"}` and `{"city":"Rome"}` side by side, and a conversation sent back would
render other prompt tokens than the turn that produced it (mlx_lm.server's prefix cache misses).
Compact with the key order kept is the shape models write and `orjson` makes.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

# Model JSON is read leniently: raw newlines and tabs inside strings are common in code arguments.
JSON_DECODER = json.JSONDecoder(strict=False)


def arguments_object(value: Any, layers: int = 1) -> dict | None:
    """Arguments as an object: an object as is, nothing (absent, null, blank) as {}, a string
    holding one decoded. `layers`: how many times a string is decoded; 2 for sources known to
    double-encode (a client's history, mlx_lm.server dumping a model's JSON string), 1 for a
    model's own text, where a string of a string is no call. None: not an object."""
    if value is None:
        return {}
    for _ in range(layers):
        if not isinstance(value, str):
            break
        if not value.strip():
            return {}
        value = _decode(value)
        if value is _NOT_JSON:
            return None
    return value if isinstance(value, dict) else None


_NOT_JSON = object()


def _decode(text: str) -> object:
    """orjson first (the common, well-formed case, ~5x faster); the lenient decoder for what it
    refuses (raw control characters inside strings)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return JSON_DECODER.decode(text)
    except json.JSONDecodeError:
        return _NOT_JSON


def arguments_text(arguments: dict) -> str | None:
    """The canonical text of an arguments object; None if it holds what JSON cannot say (a set,
    bytes). Integers beyond 64 bits, which orjson refuses, are written exactly; NaN becomes null
    (orjson's rule)."""
    try:
        return orjson.dumps(arguments).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            return json.dumps(arguments, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            return None


def canonical_arguments(value: Any, layers: int = 1) -> str | None:
    """Any accepted form of arguments to their canonical text; None if it is not an object."""
    obj = arguments_object(value, layers)
    return arguments_text(obj) if obj is not None else None
