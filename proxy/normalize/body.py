"""Raw request bytes → a JSON object, with a 400 that says what is wrong.

orjson validates UTF-8 while parsing, so the common (valid) case costs one pass; only on failure
do we decode the bytes again to tell "not UTF-8" from "not JSON" for the error code.
"""
from __future__ import annotations

import orjson

from ..errors import ProxyError, invalid


def parse_body(raw: bytes) -> dict:
    """Parse a request body; 400 invalid_encoding / invalid_json / invalid_request (not an object)."""
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
    return body


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
