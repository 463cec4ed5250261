"""The clocks of one upstream exchange (pure: times in, deadlines out).

Three budgets, counted from *progress*, not from bytes: bytes that carry no token (an SSE
comment, a role-only chunk, an upstream trickling one byte a second) never reset a clock.

  * first token: from the request's start to its first token (a prefill's whole budget);
  * idle: from one token to the next;
  * total: from the start to the end.

`Clock.remaining(now)` says how long the caller may wait for the next read and which budget
ends first; `token(now)` records progress. Routes with no notion of a token (passthrough) count
a body byte as progress.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Which budget ran out, as the error message names it.
CLOCK_NAMES = {"first_token": "before the first token", "idle": "between tokens", "total": "in total"}


@dataclass
class Clock:
    first_token_timeout: float
    idle_timeout: float
    total_timeout: float
    start: float
    last_token: float | None = field(default=None)

    def token(self, now: float) -> None:
        self.last_token = now

    @property
    def started(self) -> bool:
        return self.last_token is not None

    def remaining(self, now: float) -> tuple[float, str]:
        """(seconds left, the budget that ends first)."""
        if self.last_token is None:
            phase, phase_end = "first_token", self.start + self.first_token_timeout
        else:
            phase, phase_end = "idle", self.last_token + self.idle_timeout
        total_end = self.start + self.total_timeout
        if total_end <= phase_end:
            return total_end - now, "total"
        return phase_end - now, phase

    def message(self, which: str) -> str:
        limit = {"first_token": self.first_token_timeout, "idle": self.idle_timeout,
                 "total": self.total_timeout}[which]
        return f"upstream made no progress {CLOCK_NAMES[which]} ({which.replace('_', '-')} timeout {limit:g} s)"


def chunk_has_output(chunk: dict) -> bool:
    """Whether an OpenAI chat/completions chunk carries generated output (text, reasoning, a
    tool call fragment); a role-only or usage-only chunk does not."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):
            return True
        delta = choice.get("delta") or choice.get("message")
        if isinstance(delta, dict) and any(delta.get(k) for k in ("content", "reasoning", "reasoning_content",
                                                                   "tool_calls")):
            return True
    return False


def chunk_has_token(chunk: dict) -> bool:
    """Progress for the clocks: output, or the end of the message."""
    if chunk_has_output(chunk):
        return True
    choices = chunk.get("choices")
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices)
