"""A cached entry (one canonical completion + when it was stored) and its byte encoding.

Pure: no I/O. The memory backend keeps `StoredEntry` objects as they are (a hit costs no
decoding); the Redis backend keeps `encode_entry` bytes, which any proxy of the team can read.

Wire format (version in the first byte, so a format change never misreads old values):
    b"j" | stored_at (8-byte little-endian double, Unix seconds) | Completion JSON
    b"z" | stored_at                                             | zlib(Completion JSON)
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from proxy.completion import Completion

_RAW = b"j"
_ZLIB = b"z"
_STORED_AT = struct.Struct("<d")
_HEADER_LEN = 1 + _STORED_AT.size
# Default level: values are compressed once per generation (seconds of work), so the last bit
# of ratio is worth more than the ~50 µs it costs; decompression speed does not depend on it.
ZLIB_LEVEL = 6


class EntryDecodeError(ValueError):
    """A stored value is not one of ours (foreign writer, truncated, newer format)."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    completion: Completion
    stored_at: float  # Unix seconds (wall clock: shared by every proxy of a team)


def encode_entry(completion: Completion, stored_at: float, compress_min_bytes: int) -> bytes:
    """Completion JSON behind a small header; zlib when the JSON reaches `compress_min_bytes`
    and compression actually makes it smaller."""
    body = completion.to_json()
    header_time = _STORED_AT.pack(stored_at)
    if len(body) >= compress_min_bytes:
        packed = zlib.compress(body, ZLIB_LEVEL)
        if len(packed) < len(body):
            return _ZLIB + header_time + packed
    return _RAW + header_time + body


def decode_entry(raw: bytes) -> StoredEntry:
    if len(raw) < _HEADER_LEN:
        raise EntryDecodeError("value too short")
    tag = raw[:1]
    (stored_at,) = _STORED_AT.unpack_from(raw, 1)
    body = memoryview(raw)[_HEADER_LEN:]
    try:
        if tag == _ZLIB:
            body = zlib.decompress(body)
        elif tag != _RAW:
            raise EntryDecodeError(f"unknown entry format {tag!r}")
        return StoredEntry(Completion.from_json(body), stored_at)
    except EntryDecodeError:
        raise
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError) as e:  # orjson errors are ValueErrors
        raise EntryDecodeError(str(e)) from e

