"""Upstream chat chunks -> canonical events (pure, no I/O).

Reads the OpenAI chat-completion chunks an upstream streams (content, reasoning, structured
tool_calls, finish_reason, the usage chunk) and produces the canonical events: text passes
through the tool-call scanner, so calls written as text become ToolCallDeltas; structured
calls from the upstream are normalized; every call gets the next index, whichever source it
came from. Structured calls are gathered from their fragments and released whole when the
message finishes (toolcalls/fragments.py). The finish reason is decided once, here, from what
was actually extracted.
"""
from __future__ import annotations

from collections.abc import Callable

from ..completion import (Event, Finish, Logprobs, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage,
                          new_call_id)
from ..errors import ProxyError
from ..toolcalls import ToolCallScanner, normalize_upstream_calls
from ..toolcalls.fragments import StructuredCalls
from ..upstream.clocks import chunk_has_output


def plain_text(chunk: dict) -> str | None:
    """The text of a chunk that carries nothing `feed` reads but text (no usage, reasoning,
    call, logprobs or finish), else None."""
    if chunk.get("usage") is not None:
        return None
    choices = chunk.get("choices")
    if type(choices) is not list or not choices or type(choices[0]) is not dict:
        return None
    choice = choices[0]
    if choice.get("finish_reason") or choice.get("logprobs"):
        return None
    delta = choice.get("delta")
    if type(delta) is not dict or delta.get("reasoning") or delta.get("reasoning_content") or delta.get("tool_calls"):
        return None
    content = delta.get("content")
    return content if type(content) is str and content else None


class StreamAssembler:
    def __init__(self, tools: list[dict] | None, new_id: Callable[[], str] = new_call_id,
                 estimate_prompt: Callable[[], int] = lambda: 0, in_reasoning: bool = False) -> None:
        """`estimate_prompt`: the prompt's size, for an upstream whose stream reports no usage.
        `in_reasoning`: the prompt opened a reasoning block (see ToolCallScanner)."""
        self._scanner = ToolCallScanner(tools, new_id, in_reasoning=in_reasoning)
        self._structured = StructuredCalls()
        self._new_id = new_id
        self._calls = 0
        self._ids: set[str] = set()
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self._estimate_prompt = estimate_prompt
        self._token_chunks = 0  # chunks that carried output: a token each on the servers that stream tokens

    def feed_many(self, chunks: list[dict]) -> list[Event]:
        """The events of chunks that arrived together. Runs of chunks that carry only text
        (the common case once a server generates: one token each, many per read) are read as
        one: the scanner and the renderers then work once per read, not once per token."""
        out: list[Event] = []
        run: list[str] = []
        for chunk in chunks:
            text = plain_text(chunk)
            if text is not None:
                run.append(text)
                continue
            if run:
                out += self._text(run)
                run = []
            out += self.feed(chunk)
        if run:
            out += self._text(run)
        return out

    def _text(self, pieces: list[str]) -> list[Event]:
        self._token_chunks += len(pieces)
        return self._number(self._scanner.feed("".join(pieces)))

    def feed(self, chunk: dict) -> list[Event]:
        usage = Usage.from_openai(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        if chunk_has_output(chunk):
            self._token_chunks += 1
        out: list[Event] = []
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            return out
        choice = choices[0]
        delta = choice.get("delta") or choice.get("message") or {}
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.extend(self._number(self._scanner.feed(content)))
            raw_calls = delta.get("tool_calls")
            if isinstance(raw_calls, list) and raw_calls:
                self._structured.feed(raw_calls)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list) and logprobs["content"]:
            out.append(Logprobs(tuple(logprobs["content"])))
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            self.finish_reason = reason
            out.extend(self._release_structured())
        return out

    def _release_structured(self) -> list[Event]:
        """The upstream's own calls, once its message is finished and they are whole."""
        if not self._structured:
            return []
        calls, unusable = normalize_upstream_calls(self._structured.release(), self._new_id)
        out: list[Event] = [TextDelta(unusable)] if unusable else []  # shown, never dropped
        return out + self._number([ToolCallDelta(0, call) for call in calls])

    def finish(self) -> list[Event]:
        """The stream reached [DONE]: flush held-back text, decide the finish reason."""
        if self.finish_reason is None:
            raise ProxyError("upstream_error", "upstream stream ended without a finish reason")
        out = self._release_structured()
        events, _ = self._scanner.finish(self.finish_reason)
        out += self._number(events)
        if self._calls:  # whitespace held back between the upstream's own calls is glue, not content
            out = [ev for ev in out if not (isinstance(ev, TextDelta) and not ev.text.strip())]
        reason = self.finish_reason
        if reason != "length":
            # tool_calls only when calls came out of a completed message; mlx_lm.server says
            # tool_calls even when it dropped the only call it could not parse.
            reason = "tool_calls" if self._calls else ("stop" if reason == "tool_calls" else reason)
        out.append(Finish(reason, self.usage or self._counted_usage()))
        return out

    def _counted_usage(self) -> Usage:
        """Usage for an upstream that streams none (llama-cpp-python): the prompt estimated, the
        output counted in chunks that carried some; marked as the proxy's count."""
        return Usage(self._estimate_prompt(), self._token_chunks, estimated=True)

    def _number(self, events: list[Event]) -> list[Event]:
        """Give each call the next index, and an id no earlier call of this message has
        (clients key calls by id; some upstreams repeat theirs)."""
        out: list[Event] = []
        for ev in events:
            if isinstance(ev, ToolCallDelta):
                call = ev.call
                if call.id in self._ids:
                    call = ToolCall(self._new_id(), call.name, call.arguments)
                self._ids.add(call.id)
                ev = ToolCallDelta(self._calls, call)
                self._calls += 1
            elif isinstance(ev, TextDelta) and not ev.text:
                continue
            out.append(ev)
        return out
