"""Server-sent events, sans I/O: an incremental decoder and the encoders.

The decoder takes bytes in whatever pieces the network delivers and returns complete events;
comment lines (`: keepalive 10/300` from mlx_lm.server) come out as events of their own so they
can be passed on. Follows the WHATWG event-stream rules that matter here: LF, CRLF or CR line
ends, `data:` lines joined with newlines, one optional space after the colon, blank line ends
an event.
"""
from __future__ import annotations

from typing import NamedTuple

import orjson

DONE = b"data: [DONE]\n\n"
_BLANK = [""]  # the line that ends an event


class SSEEvent(NamedTuple):  # a tuple: made once per event, hundreds per second
    data: str | None = None  # None for a pure comment
    event: str | None = None
    comment: str | None = None


class SSEDecoder:
    """Feed bytes, get complete events. Keeps only the unfinished tail between calls."""

    def __init__(self, max_buffer: int = 16 * 1024 * 1024) -> None:
        self._buf = bytearray()  # the unfinished line (and a \r that may be half of \r\n)
        self._data: list[str] = []
        self._event: str | None = None
        self._max_buffer = max_buffer  # one event larger than this is a broken upstream

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Complete events in `chunk` (with what was left of the last one). An upstream sends many
        events per read once it is generating, so the work is done in bulk: one decode for all the
        complete lines, one split into events, and a one-line `data:` event taken whole (others
        go line by line); none for the unfinished tail (a long event arriving in small pieces is
        appended to, not re-read)."""
        if b"\n" not in chunk and b"\r" not in chunk and not self._buf.endswith(b"\r"):
            self._buf += chunk
            if len(self._buf) > self._max_buffer:
                raise ValueError("SSE line exceeds buffer limit")
            return []
        buf = bytes(self._buf) + chunk if self._buf else bytes(chunk)
        held = b""
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # may be half of a \r\n: decided with the next bytes
                buf, held = buf[:-1], b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        end = buf.rfind(b"\n")
        self._buf = bytearray((buf[end + 1:] if end != -1 else buf) + held)
        if len(self._buf) > self._max_buffer:
            raise ValueError("SSE line exceeds buffer limit")
        if end == -1:
            return []
        out: list[SSEEvent] = []
        text = buf[:end].decode("utf-8", errors="replace")
        if self._data or self._event is not None:  # an event is open: line by line
            self._lines(text.split("\n"), out)
            return out
        # Event by event: a generating server's events are one `data: ` line each; any other
        # block goes line by line. The last block is not known to be finished: line by line.
        *blocks, rest = text.split("\n\n")
        for block in blocks:
            if block.startswith("data: ") and "\n" not in block:
                out.append(SSEEvent(block[6:]))
            else:
                self._lines(block.split("\n"), out)
                self._lines(_BLANK, out)  # the blank line that ended it
        self._lines(rest.split("\n"), out)
        return out

    def _lines(self, lines: list[str], out: list[SSEEvent]) -> None:
        for line in lines:
            if line.startswith("data:"):
                self._data.append(line[6:] if line.startswith("data: ") else line[5:])
            elif line == "":
                if self._data or self._event:
                    out.append(self._flush())
                self._event = None  # a blank line ends an event's fields, dispatched or not
            else:
                ev = self._line(line)
                if ev is not None:
                    out.append(ev)

    def close(self) -> list[SSEEvent]:
        """End of stream: a final event without its blank line still counts."""
        out = self.feed(b"\n") if self._buf else []
        if self._data:
            out.append(self._flush())
        return out

    def _line(self, line: str) -> SSEEvent | None:
        """A line that is neither blank nor `data:`: a comment (an event of its own) or a field."""
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
        data = self._data
        ev = SSEEvent(data[0] if len(data) == 1 else "\n".join(data) if data else None, self._event)
        self._data, self._event = [], None
        return ev


def encode_json(obj: object, event: str | None = None) -> bytes:
    """One `data:` event carrying compact JSON (optionally named, as Anthropic/Responses do)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_comment(text: str) -> bytes:
    return b": " + text.encode() + b"\n\n"
