"""Client-visible ids derived deterministically from the canonical ones.

Each protocol has its own id prefixes (`resp_`, `msg_`, `fc_`, `toolu_`). Deriving them from the
canonical response id and tool-call ids (instead of drawing fresh random ones) keeps the JSON and
the streamed rendering of one completion identical, and a tool call keeps its id when the client
sends it back on the next turn.
"""
from __future__ import annotations

import hashlib
import re

# Characters every protocol accepts in an id (Anthropic checks tool_use ids against this).
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")
# Prefixes the canonical ids may carry, stripped before re-prefixing (call_abc -> toolu_abc).
_FOREIGN_PREFIXES = ("chatcmpl-", "call_", "resp_", "msg_", "fc_", "toolu_", "rs_")
# Length of the hash used when an id has characters a client would reject.
_HASHED_ID_CHARS = 24


def derive_id(prefix: str, raw: str) -> str:
    """`prefix` + the body of `raw`; an id that already has `prefix` is kept as it is."""
    if raw.startswith(prefix) and _SAFE_ID.fullmatch(raw):
        return raw
    body = raw
    for foreign in _FOREIGN_PREFIXES:
        if body.startswith(foreign):
            body = body[len(foreign):]
            break
    if not body or not _SAFE_ID.fullmatch(body):
        body = hashlib.sha256(raw.encode()).hexdigest()[:_HASHED_ID_CHARS]
    return prefix + body
