"""Cache keys: SHA-256 over the canonical JSON of a normalized request.

Pure and computed once per request. The hashed document is
`[schema version, endpoint, model identity, namespace]` followed by the key material serialized
with sorted object keys, compactly, in UTF-8 (arrays keep their order: message and tool order
change the prompt). orjson gives that canonical form: `\\u00e9` and `é` parse to the same string
and are written the same way, and floats are written shortest-round-trip (the normalizer has
already made `1` and `1.0` one float where the field is a float).

The key material is a denylist result (everything but transport fields stays in, unknown fields
included), so a new field that changes the output can never make two different requests share
an entry.
"""
from __future__ import annotations

import hashlib
import re

import orjson

from ..errors import invalid

# Bump with any change to what is hashed or how: old entries then simply stop matching.
KEY_SCHEMA_VERSION = 1
KEY_PREFIX = f"mlxproxy:v{KEY_SCHEMA_VERSION}:"
# X-Cache-Namespace values: short, and free of the ':' that separates key parts (so a namespace
# can be listed or flushed by prefix in Redis).
NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def model_identity(served_model: str, fingerprint: str) -> str:
    """The served model as keys see it: its name, plus its config fingerprint when known."""
    return f"{served_model}@{fingerprint}" if fingerprint else served_model


def check_namespace(value: str) -> str:
    """An X-Cache-Namespace header value, or a 400 naming the header."""
    if not NAMESPACE_PATTERN.fullmatch(value):
        raise invalid("X-Cache-Namespace must be 1-64 characters of A-Z a-z 0-9 . _ -",
                      "X-Cache-Namespace")
    return value


def canonical_json(value: object) -> bytes:
    """Sorted-key compact UTF-8 JSON; a 400 for what cannot be written (too deep, >64-bit ints)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError
        raise invalid(f"request cannot be encoded as canonical JSON: {exc}") from None


def cache_key(endpoint: str, model_identity: str, key_material: dict, namespace: str = "") -> str:
    """`mlxproxy:v1:` + [namespace + ':'] + sha256 hex of the canonical request."""
    digest = hashlib.sha256(orjson.dumps([KEY_SCHEMA_VERSION, endpoint, model_identity, namespace]))
    digest.update(b"\n")
    digest.update(canonical_json(key_material))
    return KEY_PREFIX + (f"{namespace}:" if namespace else "") + digest.hexdigest()
