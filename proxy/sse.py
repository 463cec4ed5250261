"""Server-sent events, sans I/O: an incremental decoder and the encoders.

The decoder takes bytes in whatever pieces the network delivers and returns complete events;
comment lines (`: keepalive 10/300` from mlx_lm.server) come out as events of their own so they
can be passed on. Follows the WHATWG event-stream rules that matter here: LF, CRLF or CR line
ends, `data:` lines joined with newlines, one optional space after the colon, blank line ends
an event.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class SSEEvent:
    data: str | None = None  # None for a pure comment
    event: str | None = None
    comment: str | None = None


class SSEDecoder:
    """Feed bytes, get complete events. Keeps only the unfinished tail between calls."""

    def __init__(self, max_buffer: int = 16 * 1024 * 1024) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._max_buffer = max_buffer  # one event larger than this is a broken upstream

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        self._buf += chunk
        out: list[SSEEvent] = []
        while True:
            line, sep_len = _split_line(self._buf)
            if line is None:
                break
            self._buf = self._buf[len(line) + sep_len:]
            ev = self._line(line.decode("utf-8", errors="replace"))
            if ev is not None:
                out.append(ev)
        if len(self._buf) > self._max_buffer:
            raise ValueError("SSE line exceeds buffer limit")
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line still counts."""
        out = self.feed(b"\n") if self._buf else []
        if self._data:
            out.append(self._flush())
        return out

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._flush() if self._data or self._event else None
        if line.startswith(":"):
            return SSEEvent(comment=line[1:].lstrip(" "))
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _flush(self) -> SSEEvent:
        ev = SSEEvent(data="\n".join(self._data) if self._data else None, event=self._event)
        self._data, self._event = [], None
        return ev


def _split_line(buf: bytes) -> tuple[bytes | None, int]:
    """First complete line of buf and the length of its terminator, or (None, 0)."""
    lf, cr = buf.find(b"\n"), buf.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return (buf[:lf], 1) if lf != -1 else (None, 0)
    if cr + 1 == len(buf):  # a lone \r at the end may still be half of \r\n
        return None, 0
    return buf[:cr], 2 if buf[cr + 1] == 0x0A else 1


def encode_json(obj: object, event: str | None = None) -> bytes:
    """One `data:` event carrying compact JSON (optionally named, as Anthropic/Responses do)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"
