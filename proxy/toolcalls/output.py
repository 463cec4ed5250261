"""The scanner's output side: events in order, and the whitespace rule around calls.

Whitespace directly before a call, between calls and after the last call is glue, not content:
trailing whitespace is held back until the next non-blank text (then passed on) or the next
call (then dropped); leading whitespace after a call is dropped. A run of whitespace longer
than the scanner's bound is passed on rather than held.
"""
from __future__ import annotations

from ..completion import Event, TextDelta, ToolCallDelta


class Output:
    """Collects events and applies the whitespace rule around calls. Text decided within one
    feed leaves as one delta."""

    def __init__(self, max_ws: int) -> None:
        self._events: list[Event] = []
        self._text: list[str] = []  # decided text not yet turned into a delta
        self._ws = ""  # trailing whitespace held back: dropped if a call follows
        self._ws_spilled = False  # a whitespace run outgrew the bound: pass the rest of it on
        self._after_call = False
        self._max_ws = max_ws

    def text(self, s: str) -> None:
        if self._after_call:
            s = s.lstrip()
            if not s:
                return
            self._after_call = False
        body = s.rstrip()
        if body:
            self._text += (self._ws, body)
            self._ws, self._ws_spilled = "", False
        ws = s[len(body):]
        if not ws:
            return
        if self._ws_spilled:
            self._text.append(ws)
            return
        self._ws += ws
        if len(self._ws) > self._max_ws:
            self._text.append(self._ws)
            self._ws, self._ws_spilled = "", True

    def call(self, delta: ToolCallDelta) -> None:
        self._ws, self._ws_spilled, self._after_call = "", False, True
        self._flush_text()
        self._events.append(delta)

    def finish(self) -> None:
        self._text.append(self._ws)
        self._ws = ""

    def drain(self) -> list[Event]:
        self._flush_text()
        events, self._events = self._events, []
        return events

    def _flush_text(self) -> None:
        if text := "".join(self._text):
            self._events.append(TextDelta(text))
        self._text.clear()
