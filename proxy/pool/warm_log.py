"""What an upstream recently prefilled, to prefill again after it restarts (pure).

A restarted model server has lost its KV cache: the next turn of every conversation it served
would pay a full prefill (minutes for a 30k-token Claude Code session on a laptop). The pool
keeps, per upstream, the latest prompt of each conversation it served (by the conversation's
prefix digest; a newer turn replaces the older one), newest last, within a byte bound, and
replays the newest few once the upstream is back (proxy/pool/pool.py).
"""
from __future__ import annotations

from collections import OrderedDict


class WarmLog:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._prompts: OrderedDict[str, bytes] = OrderedDict()  # digest -> upstream body
        self._bytes = 0

    def note(self, digest: str, body: bytes) -> None:
        """The latest prompt of conversation `digest` (a body larger than the bound is not kept)."""
        self._drop(digest)
        if len(body) > self.max_bytes:
            return
        self._prompts[digest] = body
        self._bytes += len(body)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._prompts)))

    def newest(self, n: int) -> list[tuple[str, bytes]]:
        """The `n` most recently noted (digest, prompt), newest first."""
        return list(reversed(self._prompts.items()))[:max(0, n)]

    def _drop(self, digest: str) -> None:
        body = self._prompts.pop(digest, None)
        if body is not None:
            self._bytes -= len(body)

    def __len__(self) -> int:
        return len(self._prompts)

    @property
    def nbytes(self) -> int:
        return self._bytes
