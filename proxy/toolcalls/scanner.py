"""The one incremental tool-call scanner: text in, `TextDelta`/`ToolCallDelta` events out.

Pure (no I/O) and format-agnostic: formats plug in through `registry`. It walks the text once,
in one of four modes:

- text:  prose, passed on at once except the shortest suffix that could still become a marker
         (or, at a line start, a tail call);
- zone:  reasoning (`<think>`...), a code fence, inline code: passed on, never scanned;
- block: a marker format's call, held until its end (or `measure`) decides: calls, or text;
- tail:  a marker-less call candidate at a line start, held until the message ends (a call
         only if nothing but whitespace follows it) or a tail format says it cannot be one.

Why this gives the same result under any chunking: every decision depends only on the text
already seen and is one that more text could not change (a held candidate is rejected only
when the format says no text could complete it, a bound is a length of the text itself), and
when a hold is given up the held text is scanned again from its start as prose.

Reasoning: text from an opening tag (`<think>`, see registry.REASONING_ZONES) to its closing tag
or the end is never scanned. A closing tag with no opening one cannot make the text before it
reasoning after the fact (that text, and any call in it, was already sent), so when the prompt
itself opened the reasoning (the served template ends its generation prompt with `<think>`)
the scanner is told so and starts inside it; mlx_lm.server itself moves such reasoning out of
the content.

Code: a fence opens with 3+ backticks at a line start and runs to a closing fence (or the end);
an inline span runs to the same number of backticks or, unclosed, to the end of its line. Neither
is scanned for markers, except a whole tail fence whose body is calls (formats/json_fence.py).

A message cut short (any finish reason but stop / tool_calls) has no known tail, and a block it
left open is text. Text around calls follows output.py (whitespace next to a call is glue, not
content); all other text is passed on byte for byte, never taken back, never as an empty delta.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from ..completion import Event, TextDelta, ToolCall, ToolCallDelta, new_call_id
from .calls import MORE, SYNTAX, DeclaredTools, accept_calls
from .output import Output
from .registry import MARKER_FORMATS, REASONING_ZONES, TAIL_FORMATS

# The longest text held back while a call is undecided (characters). A whole-file Write of a
# large file is a single call, so this is generous; past it the held text is passed on as text.
MAX_HELD_CHARS = 1 << 20

# Finish reasons of a message that ended by itself (not cut by `length`, an error, a client).
_COMPLETED = frozenset({"stop", "tool_calls"})
# How much of a line the tail formats see first: enough to tell prose from a call's opening.
_FIRST_LOOK = 32

_TEXT, _ZONE, _BLOCK, _TAIL = "text", "zone", "block", "tail"
_REASONING, _INLINE, _FENCE = "reasoning", "inline", "fence"
_INLINE_STOP = re.compile(r"\n|`+")
_FENCE_CLOSE = re.compile(r"[ \t]*(`*)")
_INDENT = re.compile(r"[ \t]*")


@dataclass(frozen=True)
class _Group:
    """Marker formats that open with the same START (and so close with the same END)."""
    start: str
    end: str | None
    formats: tuple[ModuleType, ...]


def _groups() -> dict[str, _Group]:
    by_start: dict[str, list[ModuleType]] = {}
    for fmt in MARKER_FORMATS:
        by_start.setdefault(fmt.START, []).append(fmt)
    groups = {}
    for start, fmts in by_start.items():
        if len({f.END for f in fmts}) != 1 or (fmts[0].END is None and len(fmts) > 1):
            raise ValueError(f"formats opening with {start!r} disagree on how the call ends")
        groups[start] = _Group(start, fmts[0].END, tuple(fmts))
    return groups


GROUPS = _groups()
_REASONING_CLOSE = dict(REASONING_ZONES)
_TRIGGER_TEXTS = sorted([*GROUPS, *_REASONING_CLOSE], key=len, reverse=True)
_TRIGGERS = re.compile("|".join([*map(re.escape, _TRIGGER_TEXTS), "\n", "`"]))
_TRIGGER_PREFIXES = frozenset(t[:k] for t in _TRIGGER_TEXTS for k in range(1, len(t)))
_LONGEST_TRIGGER = max(map(len, _TRIGGER_TEXTS))


def _partial_suffix(text: str, start: int, prefixes: frozenset[str], longest: int) -> int:
    """Length of the longest suffix of text[start:] that could be the start of a trigger."""
    for k in range(min(longest - 1, len(text) - start), 0, -1):
        if text[-k:] in prefixes:
            return k
    return 0


def _last(text: str, n: int) -> str:
    return text[max(0, len(text) - n):] if n > 0 else ""


def _guarded(fn: Callable, *args):
    """Formats are pure parsers of model output; one that trips on odd text must not fail the
    response (fail open: the text stays content)."""
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - deliberately broad, see docstring
        return None


class ToolCallScanner:
    """Feed upstream text as it arrives; get prose and whole tool calls back, in order."""

    def __init__(self, tools: list[dict] | None, new_id: Callable[[], str] = new_call_id,
                 max_held_chars: int = MAX_HELD_CHARS, in_reasoning: bool = False) -> None:
        """`in_reasoning`: the prompt already opened the reasoning (a template whose generation
        prompt ends with `<think>`): the message starts inside it, so a draft call before the
        lone `</think>` is reasoning, never a call."""
        self._tools = DeclaredTools.from_openai(tools)
        self._new_id = new_id
        self._max = max_held_chars
        self._out = Output(max_held_chars)
        self._buf = ""
        self._i = 0  # self._buf[:self._i] is decided
        self._mode = _TEXT
        self._bol = True  # self._i is at a line start (only indentation before it)
        self._tail_tried = False  # the tail formats already said no at this line start
        self._zone = ""  # _REASONING | _INLINE | _FENCE
        self._zone_end = ""  # closing text of a reasoning zone
        if in_reasoning:
            self._mode, self._zone, self._zone_end = _ZONE, _REASONING, REASONING_ZONES[0][1]
        self._ticks = 0  # backtick count of the open inline code span or fence
        self._group: _Group | None = None
        self._start = 0  # where the held block or tail candidate starts in self._buf
        self._searched = 0  # a block's END is not in self._buf before this index
        self._next_check = 0  # held length at which to ask the formats again
        self._final_reason = ""
        self._incoming: list[str] = []  # chunks kept aside while a held call cannot change
        self._incoming_len = 0
        self._end_overlap = ""  # the last len(END)-1 characters seen, to spot an END across chunks
        self._tail_first: dict[str, bool] = {}
        self.calls = 0  # calls emitted so far

    # --- public ------------------------------------------------------------------------------

    def feed(self, text: str) -> list[Event]:
        if self._tools is None:
            return [TextDelta(text)] if text else []
        if text:
            self._incoming.append(text)
            self._incoming_len += len(text)
            if not self._nothing_to_decide(text):
                self._take_incoming()
                self._run(final=False)
        return self._out.drain()

    def finish(self, finish_reason: str) -> tuple[list[Event], str]:
        """Decide everything still held; the finish reason becomes `tool_calls` when calls were
        found in a message that ended by itself (`stop`); `length` and others stay."""
        if self._tools is None:
            return [], finish_reason
        self._final_reason = finish_reason
        self._take_incoming()
        self._run(final=True)
        self._out.finish()
        reason = "tool_calls" if finish_reason in _COMPLETED and self.calls else finish_reason
        return self._out.drain(), reason

    # --- holding without copying --------------------------------------------------------------

    def _nothing_to_decide(self, text: str) -> bool:
        """While a long call is held, most chunks cannot change anything: they are kept aside
        (not appended to the buffer, which would copy it every chunk) until the next length at
        which the held text is looked at again, or until the block's END may have arrived."""
        held = len(self._buf) + self._incoming_len - self._start
        if self._mode == _TAIL or (self._mode == _BLOCK and self._group.end is None):
            return held <= self._next_check and held <= self._max
        if self._mode == _BLOCK:
            window = self._end_overlap + text
            if self._group.end in window or held > self._max:
                return False
            self._end_overlap = _last(window, len(self._group.end) - 1)
            return True
        return False

    def _take_incoming(self) -> None:
        if self._incoming:
            self._buf += "".join(self._incoming)
            self._incoming.clear()
            self._incoming_len = 0

    # --- the walk ----------------------------------------------------------------------------

    def _run(self, final: bool) -> None:
        step = {_TEXT: self._text, _ZONE: self._in_zone, _BLOCK: self._block, _TAIL: self._tail}
        while step[self._mode](final):
            pass
        keep = self._start if self._mode in (_BLOCK, _TAIL) else self._i
        if keep:
            self._buf = self._buf[keep:]
            self._searched -= keep
            self._start -= keep
            self._i -= keep
        if self._mode == _BLOCK and self._group.end is not None:
            self._end_overlap = _last(self._buf, len(self._group.end) - 1)

    def _emit(self, upto: int) -> None:
        if upto > self._i:
            self._out.text(self._buf[self._i:upto])
            self._i = upto

    def _text(self, final: bool) -> bool:
        buf = self._buf
        if self._bol and not self._tail_tried:
            self._emit(_INDENT.match(buf, self._i).end())
            if self._i == len(buf):
                return False
            self._tail_tried = True
            if self._tail_viable(buf[self._i:self._i + _FIRST_LOOK]):
                self._mode, self._start, self._next_check = _TAIL, self._i, _FIRST_LOOK
                return True
        m = _TRIGGERS.search(buf, self._i)
        if m is None:
            hold = 0 if final else _partial_suffix(buf, self._i, _TRIGGER_PREFIXES, _LONGEST_TRIGGER)
            self._emit_prose(len(buf) - hold)
            return False
        self._emit_prose(m.start())
        token = m.group()
        if token == "\n":
            self._emit(m.end())
            self._bol, self._tail_tried = True, False
            return True
        if token == "`":
            return self._open_code(final)
        if token in _REASONING_CLOSE:
            self._emit(m.end())
            self._mode, self._zone, self._zone_end, self._bol = _ZONE, _REASONING, _REASONING_CLOSE[token], False
            return True
        self._mode, self._group, self._start = _BLOCK, GROUPS[token], m.start()
        self._searched, self._next_check = m.end(), 0
        return True

    def _emit_prose(self, upto: int) -> None:
        if upto > self._i:
            if self._buf[self._i:upto].strip(" \t"):
                self._bol = False
            self._emit(upto)

    def _open_code(self, final: bool) -> bool:
        run_end = self._i
        while run_end < len(self._buf) and self._buf[run_end] == "`":
            run_end += 1
        if run_end == len(self._buf) and not final:
            return False  # the run may still grow: its length decides inline code or fence
        self._ticks = run_end - self._i
        self._mode, self._zone = _ZONE, (_FENCE if self._bol and self._ticks >= 3 else _INLINE)
        self._emit(run_end)
        self._bol = False
        return True

    def _in_zone(self, final: bool) -> bool:
        buf = self._buf
        if self._zone == _REASONING:
            k = buf.find(self._zone_end, self._i)
            if k >= 0:
                self._emit(k + len(self._zone_end))
                self._mode = _TEXT
                return True
            end = self._zone_end
            hold = 0 if final else _partial_suffix(buf, self._i, frozenset(end[:j] for j in range(1, len(end))), len(end))
            self._emit(len(buf) - hold)
            return False
        if self._zone == _INLINE:
            m = _INLINE_STOP.search(buf, self._i)
            if m is None:
                self._emit(len(buf))
                return False
            self._emit(m.start())
            if m.group() == "\n":  # an unclosed span ends with its line
                self._mode = _TEXT
                return True
            if m.end() == len(buf) and not final:
                return False
            self._emit(m.end())
            if len(m.group()) == self._ticks:
                self._mode = _TEXT
            return True
        return self._in_fence(final)

    def _in_fence(self, final: bool) -> bool:
        buf = self._buf
        if self._bol:
            m = _FENCE_CLOSE.match(buf, self._i)
            if m.end() == len(buf) and not final:
                return False
            if len(m.group(1)) >= self._ticks:
                self._emit(m.end())
                self._mode, self._bol = _TEXT, False
                return True
            self._bol = False
        k = buf.find("\n", self._i)
        if k < 0:
            self._emit(len(buf))
            return False
        self._emit(k + 1)
        self._bol = True
        return True

    def _block(self, final: bool) -> bool:
        group, buf = self._group, self._buf
        body_at = self._start + len(group.start)
        if group.end is not None:
            k = buf.find(group.end, max(self._searched, body_at))
            while k >= 0:
                if k - body_at > self._max:
                    return self._reject_block()
                verdict = self._try_calls(buf[body_at:k], k + len(group.end))
                if verdict is not MORE:
                    return verdict or self._reject_block()
                self._searched = k + 1  # that END was inside the call (a file that mentions it)
                k = buf.find(group.end, self._searched)
            self._searched = max(self._searched, body_at, len(buf) - len(group.end) + 1)
            if len(buf) - body_at > self._max:
                return self._reject_block()
            if final:
                # A model may stop (EOS) instead of writing the closing tag; a cut one may not.
                if self._final_reason in _COMPLETED and self._try_calls(buf[body_at:], len(buf)) is True:
                    return True
                return self._reject_block()
            return False
        held = len(buf) - body_at
        if not final and held < self._next_check and held <= self._max:
            return False
        self._next_check = held + max(16, held // 4)
        n = _guarded(group.formats[0].measure, buf[body_at:], final)
        if n is None and not final and held <= self._max:
            return False
        if n is None or n < 0 or n > self._max or self._try_calls(buf[body_at:body_at + n], body_at + n) is not True:
            return self._reject_block()
        return True

    def _try_calls(self, body: str, end: int) -> bool | object:
        """True: the body was calls, now emitted. MORE: a format says the body stops inside a
        call (look for a later END). False: not calls."""
        verdict: bool | object = False
        for fmt in self._group.formats:
            parsed = _guarded(fmt.parse, body, self._tools)
            if parsed is MORE:
                verdict = MORE
                continue
            if parsed is SYNTAX:  # the format's own syntax, no call: removed
                self._i, self._mode, self._bol = end, _TEXT, self._buf[:end].endswith("\n")
                self._tail_tried = False
                return True
            calls = accept_calls(parsed, self._tools)
            if calls:
                self._emit_calls(calls)
                self._i, self._mode, self._bol = end, _TEXT, False
                return True
        return verdict

    def _reject_block(self) -> bool:
        """The opening marker is text; scanning resumes right after it (a later real call in
        what was held is still found)."""
        self._i, self._mode, self._bol = self._start, _TEXT, False
        self._emit(self._start + len(self._group.start))
        return True

    def _tail(self, final: bool) -> bool:
        candidate_len = len(self._buf) - self._start
        if candidate_len > self._max:
            return self._reject_tail()
        if final:
            if self._final_reason not in _COMPLETED:
                return self._reject_tail()  # a cut message has no known tail
            candidate = self._buf[self._start:].rstrip()
            for fmt in TAIL_FORMATS:
                calls = accept_calls(_guarded(fmt.parse, candidate, self._tools), self._tools)
                if calls:
                    self._emit_calls(calls)
                    self._i = len(self._buf)
                    self._mode = _TEXT
                    return False
            return self._reject_tail()
        # Ask again on prefixes that grow geometrically: a "no" on any prefix is final, and the
        # total work stays linear in the candidate's length.
        while self._next_check < candidate_len:
            self._next_check += max(16, self._next_check // 4)
            if not self._tail_viable(self._buf[self._start:self._start + self._next_check]):
                return self._reject_tail()
        return False

    def _tail_viable(self, candidate: str) -> bool:
        # Most lines are ruled out by their first character alone; a "no" for a prefix is a "no"
        # for the whole line, so that answer is remembered per character.
        first = self._tail_first.get(candidate[:1])
        if first is None:
            first = self._tail_first[candidate[:1]] = self._ask_tails(candidate[:1])
        return first and self._ask_tails(candidate)

    def _ask_tails(self, candidate: str) -> bool:
        return any(_guarded(fmt.viable, candidate, self._tools) for fmt in TAIL_FORMATS)

    def _reject_tail(self) -> bool:
        self._i, self._mode, self._bol, self._tail_tried = self._start, _TEXT, True, True
        return True

    def _emit_calls(self, calls: list[tuple[str, str]]) -> None:
        for name, arguments in calls:
            self._out.call(ToolCallDelta(self.calls, ToolCall(self._new_id(), name, arguments)))
            self.calls += 1
