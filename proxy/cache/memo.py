"""Raw-body memo: identical request bytes are the same canonical request, so a repeat skips
parsing, normalizing and hashing up to megabytes of JSON and goes straight to the cache.

Repeats are the cache's whole business (Claude Code's retries after a timeout, a team's
identical warm-up and title requests), and on a 100 KB body the parse + normalize + key work
costs more than answering from the cache. Normalization is a pure function of the bytes, the
protocol and the settings, so the memo can never change an answer; a miss just takes the
normal path. Bounded by entry count (each entry is a key and two flags).
"""
from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass

# A few thousand distinct recent requests cover a team's retries; ~200 bytes an entry.
MEMO_ENTRIES = 4096
# Python's own bytes hash is SipHash keyed with a per-process random secret: 64 bits that
# nobody outside can aim a collision at (chance of an honest one among 4096 entries: ~1e-16 a
# request), at 2.5x the speed of SHA-256 on a 100 KB body. With a fixed PYTHONHASHSEED the
# secret is known, so the memo falls back to SHA-256.
_KEYED_HASH = os.environ.get("PYTHONHASHSEED", "random") == "random"


@dataclass(frozen=True, slots=True)
class Prepared:
    """What serving a request from the cache needs, without the request itself."""
    key: str
    client_stream: bool
    include_usage: bool
    rules_fired: tuple[str, ...] = ()
    tool_prompt: bool = False  # the tools went into the prompt (the response says so)


class BodyMemo:
    def __init__(self, max_entries: int = MEMO_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, Prepared] = OrderedDict()

    @staticmethod
    def digest(protocol: str, namespace: str, raw: bytes | bytearray) -> tuple:
        """(A big body is a bytearray, unhashable: SHA-256, which lets other threads run.)"""
        body = hash(raw) if _KEYED_HASH and isinstance(raw, bytes) else hashlib.sha256(raw).digest()
        return protocol, namespace, len(raw), body

    def get(self, digest: tuple) -> Prepared | None:
        prepared = self._entries.get(digest)
        if prepared is not None:
            self._entries.move_to_end(digest)
        return prepared

    def put(self, digest: tuple, prepared: Prepared) -> None:
        self._entries[digest] = prepared
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
