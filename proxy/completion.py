"""The canonical completion and the protocol-neutral stream events it is made of.

A generation is seen by the rest of the proxy as a sequence of `Event`s (text, reasoning, whole
tool calls, then one `Finish`). Live upstream streams are turned into these events once (upstream
chunk parsing + tool-call scanning); the cache stores the assembled `Completion`; a hit is
replayed as the same events. Renderers (translate/) turn events or a completion into chat
completions, Responses or Anthropic Messages output, so every protocol shares one pipeline.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

# Finish reasons under which a finished generation is worth storing.
CACHEABLE_FINISH_REASONS = frozenset({"stop", "tool_calls", "length"})
# Replayed content is cut into slices this long so a cached stream still streams.
REPLAY_SLICE_CHARS = 32


def new_call_id() -> str:
    """A fresh tool-call id in OpenAI's style (the AI SDK needs a string id on every call)."""
    return "call_" + secrets.token_hex(12)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text of an object, never double-encoded


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None  # prompt tokens the upstream's KV cache already had
    # Counted by the proxy, not reported by the upstream (its stream had no usage chunk).
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_openai(self) -> dict:
        out: dict = {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                     "total_tokens": self.total_tokens}
        if self.cached_tokens is not None:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.estimated:
            out["estimated"] = True  # the proxy's count: the upstream reported none
        return out

    def to_row(self) -> list:
        """Compact form for cache entries and the cross-proxy relay."""
        return [self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.estimated]

    @classmethod
    def from_row(cls, row: list | None) -> Usage | None:
        return None if row is None else cls(*row)  # entries written before `estimated` have 3

    @classmethod
    def from_openai(cls, u: dict | None) -> Usage | None:
        if not isinstance(u, dict):
            return None
        details = u.get("prompt_tokens_details") or {}
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return cls(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0),
                   int(cached) if isinstance(cached, int) else None)


# --- stream events --------------------------------------------------------------------------

@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """One whole tool call (clients get each call in one delta, never pieces)."""
    index: int
    call: ToolCall


@dataclass(frozen=True)
class Logprobs:
    """Token log-probabilities as the upstream sent them (OpenAI's `logprobs.content` entries)."""
    entries: tuple


@dataclass(frozen=True)
class Finish:
    finish_reason: str  # stop | length | tool_calls | ...
    usage: Usage | None = None


Event = TextDelta | ReasoningDelta | ToolCallDelta | Logprobs | Finish


# --- the completion ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Completion:
    content: str | None
    finish_reason: str
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str | None = None
    usage: Usage | None = None
    model: str = ""
    created: int = 0
    logprobs: tuple | None = None  # token entries, when the client asked for them

    @property
    def has_output(self) -> bool:
        return bool(self.content or self.tool_calls or self.reasoning)

    @property
    def cacheable(self) -> bool:
        return self.finish_reason in CACHEABLE_FINISH_REASONS and self.has_output

    def events(self, slice_chars: int = REPLAY_SLICE_CHARS) -> Iterator[Event]:
        """Replay as stream events: reasoning, then content in small slices, calls, finish."""
        for text, kind in ((self.reasoning, ReasoningDelta), (self.content, TextDelta)):
            for i in range(0, len(text or ""), slice_chars):
                yield kind(text[i:i + slice_chars])
        if self.logprobs:
            yield Logprobs(self.logprobs)
        for i, call in enumerate(self.tool_calls):
            yield ToolCallDelta(i, call)
        yield Finish(self.finish_reason, self.usage)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "content": self.content, "reasoning": self.reasoning, "finish_reason": self.finish_reason,
            "tool_calls": [[c.id, c.name, c.arguments] for c in self.tool_calls],
            "usage": None if self.usage is None else self.usage.to_row(),
            "model": self.model, "created": self.created, "logprobs": self.logprobs,
        })

    @classmethod
    def from_json(cls, raw: bytes) -> Completion:
        d = orjson.loads(raw)
        logprobs = d.get("logprobs")
        return cls(content=d["content"], reasoning=d.get("reasoning"), finish_reason=d["finish_reason"],
                   tool_calls=tuple(ToolCall(*c) for c in d.get("tool_calls") or ()),
                   usage=Usage.from_row(d.get("usage")), model=d.get("model", ""),
                   created=int(d.get("created", 0)), logprobs=tuple(logprobs) if logprobs else None)


@dataclass
class CompletionBuilder:
    """Accumulates events into a Completion (the same result whether streamed or not)."""
    model: str = ""
    created: int = 0
    _text: list[str] = field(default_factory=list)
    _reasoning: list[str] = field(default_factory=list)
    _calls: list[ToolCall] = field(default_factory=list)
    _logprobs: list = field(default_factory=list)
    finish: Finish | None = None

    def add(self, ev: Event) -> None:
        if isinstance(ev, TextDelta):
            self._text.append(ev.text)
        elif isinstance(ev, ReasoningDelta):
            self._reasoning.append(ev.text)
        elif isinstance(ev, ToolCallDelta):
            self._calls.append(ev.call)
        elif isinstance(ev, Logprobs):
            self._logprobs.extend(ev.entries)
        elif isinstance(ev, Finish):
            self.finish = ev

    def extend(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.add(ev)

    def build(self) -> Completion:
        if self.finish is None:
            raise ValueError("generation has not finished")
        return Completion(content="".join(self._text) or None, reasoning="".join(self._reasoning) or None,
                          tool_calls=tuple(self._calls), finish_reason=self.finish.finish_reason,
                          usage=self.finish.usage, model=self.model, created=self.created,
                          logprobs=tuple(self._logprobs) or None)
