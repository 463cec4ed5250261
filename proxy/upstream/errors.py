"""What an upstream's error answer means, as one of our errors (pure).

Servers answer errors in their own shapes: mlx_lm.server `{"error": "..."}` (a string, HTTP 404
for template errors), OpenAI-style servers `{"error": {"message", "type", "code"}}` (as a
status, or as an event inside a 200 stream: llama.cpp's server). A prompt longer than the
upstream's context must stay a 400 the client can act on (Claude Code compacts on "prompt is
too long"), never a retryable 5xx that repeats the same prefill.
"""
from __future__ import annotations

import re

import orjson

from ..config import RETRY_AFTER
from ..errors import ProxyError

# How context overflows are worded: OpenAI's code, llama.cpp's type and messages, vLLM's,
# llama-cpp-python's ValueError, Anthropic's own.
_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
_CONTEXT_WORDS = re.compile(r"maximum context length|context (?:length|size|window)|exceeds? the available context"
                            r"|prompt is too long|too many tokens", re.I)
# The Anthropic-style opening of our message, which Claude Code recognises.
CONTEXT_MESSAGE = "prompt is too long for the model's context: {}"


def _error_parts(raw: bytes | str, status: int) -> tuple[str, str | None]:
    """(message, code or type) of an error body."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw if isinstance(raw, str) else raw[:500].decode("utf-8", "replace")
        return text.strip()[:500] or f"HTTP {status}", None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        code = err.get("code") if isinstance(err.get("code"), str) else err.get("type")
        return str(err.get("message") or err)[:500], code if isinstance(code, str) else None
    return str(err if err is not None else data)[:500], None


def error_message(status: int, raw: bytes | str) -> str:
    return _error_parts(raw, status)[0]


def _context_overflow(message: str, code: str | None) -> bool:
    return code in _CONTEXT_CODES or bool(_CONTEXT_WORDS.search(message))


def map_upstream_status(status: int, raw: bytes | str) -> ProxyError:
    """An upstream error answer -> our error. 4xx means the request could not be served as sent
    (mlx_lm.server uses 404 for template errors and bad tool-call history), 5xx an upstream fault."""
    message, code = _error_parts(raw, status)
    if 400 <= status < 500 and _context_overflow(message, code):
        return ProxyError("context_length_exceeded", CONTEXT_MESSAGE.format(message))
    if status == 413:
        return ProxyError("request_too_large", f"upstream: {message}")
    if 400 <= status < 500 and status not in (408, 429):
        return ProxyError("upstream_rejected", f"upstream: {message}")
    if status in (429, 503):
        return ProxyError("upstream_unavailable", f"upstream: {message}", retry_after=RETRY_AFTER)
    return ProxyError("upstream_error", f"upstream: {message}")


def map_error_event(data: str) -> ProxyError:
    """An error event inside a stream (`data: {"error": {...}}`), by its own code when it has one."""
    message, code = _error_parts(data, 500)
    try:
        inner = orjson.loads(data).get("error")
        status = inner.get("code") if isinstance(inner, dict) else None
    except (orjson.JSONDecodeError, AttributeError):
        status = None
    if isinstance(status, int) and 400 <= status < 600:
        return map_upstream_status(status, data)
    if _context_overflow(message, code):
        return ProxyError("context_length_exceeded", CONTEXT_MESSAGE.format(message))
    return ProxyError("upstream_error", f"upstream: {message}")
