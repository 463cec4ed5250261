"""Which upstream of the pool serves a generation (pure: no I/O, no clock).

A model server keeps the KV cache of the prompts it has recently prefilled; a conversation's
next turn repeats its previous prompt and adds to it. So a conversation should go back to the
upstream that served its last turn: that is the one whose cache holds its prefix. A
conversation is known by the digest of its stable prefix (tools, system text and the messages
up to its first user message: what every later turn repeats unchanged); the pool remembers
which upstream each digest went to (in Redis when the cache is shared, so every proxy of a
team routes alike).

The rule, for one request:
  * only upstreams that serve and serve the pool's model are candidates;
  * one candidate: it (`only_healthy`);
  * `round_robin` routing (a setting, for comparison): in turn;
  * the remembered upstream, unless it is saturated (more than `max_queued` waiting):
    `affinity`; for a steerable request (a background one, Claude Code's warm-up or a title:
    short, its prefix worth little; or a Claude Code subagent's, which says so in its billing
    line) unless it is busy at all (every slot taken), when it goes to the least-loaded
    instead (`steered`), out of the way of the main conversation's turns;
  * else the least-loaded, ties broken by the digest (rendezvous hashing: two proxies that
    know nothing of a conversation still pick the same upstream): `fallback` when the
    remembered one was passed over, `new` when nothing was remembered.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson

REASONS = ("affinity", "new", "fallback", "only_healthy", "steered", "round_robin")


@dataclass(frozen=True)
class Candidate:
    """What routing needs to know of one upstream, now."""
    url: str
    serving: bool
    same_model: bool
    running: int
    queued: int
    capacity: int

    @property
    def usable(self) -> bool:
        return self.serving and self.same_model

    @property
    def pressure(self) -> float:
        """Generations running or waiting per slot: 1.0 is full, above it a queue."""
        return (self.running + self.queued) / max(1, self.capacity)


@dataclass(frozen=True)
class Choice:
    url: str
    reason: str


def prefix_digest(body: dict) -> str:
    """The digest of a canonical chat body's stable prefix: its tools, and its messages up to
    and including the first user message (all system text before it too). Every later turn of
    the same conversation has the same one."""
    messages = body.get("messages") or []
    end = next((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"),
               len(messages) - 1)
    stable = orjson.dumps([body.get("tools"), messages[:end + 1]])
    return hashlib.blake2b(stable, digest_size=16).hexdigest()


def _rendezvous(digest: str, url: str) -> bytes:
    return hashlib.blake2b(f"{digest}|{url}".encode(), digest_size=8).digest()


def choose(candidates: list[Candidate], digest: str, remembered: str | None, *, policy: str = "affinity",
           steerable: bool = False, max_queued: int = 2, turn: int = 0) -> Choice | None:
    """The upstream for one generation, and why; None when no candidate is usable. `turn`: a
    counter the caller advances, for round-robin."""
    usable = [c for c in candidates if c.usable]
    if not usable:
        return None
    if len(usable) == 1:
        return Choice(usable[0].url, "only_healthy")
    if policy == "round_robin":
        return Choice(usable[turn % len(usable)].url, "round_robin")
    kept = next((c for c in usable if c.url == remembered), None) if remembered is not None else None
    if kept is not None:
        busy = kept.running + kept.queued >= kept.capacity if steerable else kept.queued > max_queued
        if not busy:
            return Choice(kept.url, "affinity")
    least = min(usable, key=lambda c: (c.pressure, _rendezvous(digest, c.url)))
    if steerable:
        return Choice(least.url, "steered")
    return Choice(least.url, "new" if remembered is None else "fallback")


def same_model(primary: tuple[str, ...], member: tuple[str, ...]) -> bool:
    """Whether an upstream listing `member` serves the pool's model (the first upstream lists
    `primary`). A server that lists nothing cannot be told apart: it is taken at its word."""
    return not primary or not member or bool(set(primary) & set(member))
