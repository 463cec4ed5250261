"""The scanner's output side: events in order, and the whitespace rule around calls.

Whitespace next to a call is glue, not content: before the first call, between calls and
after the last one it is dropped, so a message that is only calls has no content. Between prose
before a call and prose after it, the prose must still read as it was written: one separator
stays, the larger of the two sides (by line breaks: "A.\n<call>\nB." -> "A.\nB.", a blank
line stays a blank line; on one line a single space). Trailing whitespace is held back until
the next non-blank text (then passed on) or the next call; a run of whitespace longer than the
scanner's bound is passed on rather than held.
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
        self._prose = False  # non-blank text came before the current run of calls
        self._before = ""  # whitespace between that prose and the first call of the run
        self._after = ""  # whitespace after the last call so far
        self._max_ws = max_ws

    def text(self, s: str) -> None:
        if self._after_call:
            body = s.lstrip()
            if not body:
                self._after = (self._after + s)[-self._max_ws:]
                return
            gap = self._after + s[:len(s) - len(body)]
            s = (separator(self._before, gap) if self._prose else "") + body
            self._after_call = False
        body = s.rstrip()
        if body:
            self._text += (self._ws, body)
            self._ws, self._ws_spilled, self._prose = "", False, True
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
        if not self._after_call:  # the first call after prose: remember what separated them
            self._before = self._ws
        self._ws, self._ws_spilled, self._after_call, self._after = "", False, True, ""
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


def separator(before: str, after: str) -> str:
    """What stays between the prose around removed calls: the side with more line breaks
    (the text before on a tie), or one space when neither breaks the line."""
    side = before if before.count("\n") >= after.count("\n") else after
    if "\n" in side:
        return side[side.index("\n"):side.rindex("\n") + 1]  # its line breaks, not its indentation
    return " " if before or after else ""
