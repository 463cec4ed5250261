"""Volatile text rules: regexes removed from system text before forwarding and hashing.

Claude Code's `x-anthropic-billing-header: …cch=…` line changes on every request; left in, it
makes every request unique for our cache and moves the start of the prompt for mlx_lm.server's
KV prefix cache. The rules are configurable (Settings.volatile_rules) and listed with their hit
counts in /health so an operator can see whether a rule still matches anything.

Applying a rule is pure (`apply` returns the new text and which rules fired); counting is a
separate, explicit step (`count`) done by the caller once per request, so the normalizer stays a
pure function that can be called twice (or in tests) without skewing the counters.
"""
from __future__ import annotations

import re
from collections.abc import Iterable


class VolatileRules:
    """Compiled rules in configuration order, with a hit counter per rule."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        for pattern in patterns:
            try:
                self._rules.append((pattern, re.compile(pattern)))
            except re.error as exc:
                raise ValueError(f"volatile rule {pattern!r} is not a valid regex: {exc}") from exc
        self.hits: dict[str, int] = {pattern: 0 for pattern, _ in self._rules}

    def __bool__(self) -> bool:
        return bool(self._rules)

    @property
    def patterns(self) -> tuple[str, ...]:
        return tuple(pattern for pattern, _ in self._rules)

    def apply(self, text: str) -> tuple[str, tuple[str, ...]]:
        """`text` with every rule's matches removed, and the patterns that matched (in order)."""
        fired: list[str] = []
        for pattern, regex in self._rules:
            text, n = regex.subn("", text)
            if n:
                fired.append(pattern)
        return text, tuple(fired)

    def count(self, fired: Iterable[str]) -> None:
        """Record one request's hits (ChatRequest.rules_fired); unknown patterns are ignored."""
        for pattern in fired:
            if pattern in self.hits:
                self.hits[pattern] += 1

    def to_json(self) -> list[dict]:
        """The rules and their hit counts, for /health."""
        return [{"pattern": pattern, "hits": self.hits[pattern]} for pattern, _ in self._rules]
