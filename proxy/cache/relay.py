"""Relaying a generation to followers in other proxies that share the cache (a team's Macs).

The leading proxy publishes its events, in order, as they arrive; a follower elsewhere reads
them and streams them to its own clients live, then takes the stored entry as the result. The
codec is pure; the publisher keeps the Redis writes off the generation's own path (one write
per batch of whatever has accumulated, never one per token while a write is in flight).

Nobody reads a relay most of the time (the same prompt on two Macs at once is the exception),
so a publisher starts dormant: it writes nothing until a follower has marked the key followed
(`ResponseCache.follow` does, and wakes it); then it publishes everything so far as its first
batch and the rest live. A follower that comes late still gets every event.

Each batch carries its leader's lease token and the number of events before it, so a follower
(`RelayReader`) knows when part of the relay is gone (a batch that failed to publish, a flush
on another Mac, an expiry) instead of passing on a gapped answer as a whole one.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import orjson

from ..completion import Finish, Logprobs, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage
from ..generation.flight import Item
from ..upstream.client import Comment
from .store import ResponseCache

log = logging.getLogger(__name__)


def _encode(item: Item) -> list:
    if isinstance(item, TextDelta):
        return ["t", item.text]
    if isinstance(item, ReasoningDelta):
        return ["r", item.text]
    if isinstance(item, ToolCallDelta):
        return ["c", item.index, item.call.id, item.call.name, item.call.arguments]
    if isinstance(item, Finish):
        return ["f", item.finish_reason, None if item.usage is None else item.usage.to_row()]
    if isinstance(item, Logprobs):
        return ["l", list(item.entries)]
    if isinstance(item, Comment):
        return ["k", item.text]
    raise TypeError(f"cannot relay {item!r}")


def _decode(row: list) -> Item:
    kind = row[0]
    if kind == "t":
        return TextDelta(row[1])
    if kind == "r":
        return ReasoningDelta(row[1])
    if kind == "c":
        return ToolCallDelta(row[1], ToolCall(row[2], row[3], row[4]))
    if kind == "f":
        return Finish(row[1], Usage.from_row(row[2]))
    if kind == "l":
        return Logprobs(tuple(row[1]))
    if kind == "k":
        return Comment(row[1])
    raise ValueError(f"unknown relayed item {kind!r}")


def encode_items(leader: str, seq: int, items: Iterable[Item]) -> bytes:
    """A batch: its leader's lease token (a follower must never splice the events of a leader
    that died into those of the one that took over) and `seq`, the events relayed before it."""
    return orjson.dumps([leader, seq, [_encode(item) for item in items]])


def decode_items(raw: bytes) -> tuple[str, int, list[Item]]:
    leader, seq, rows = orjson.loads(raw)
    return leader, seq, [_decode(row) for row in rows]


class RelayGap(Exception):
    """Events of the relay being followed are missing: what was passed on is incomplete."""


class RelayReader:
    """A follower's reading of relayed batches: one leader's, in order, none missing.

    A leader whose first events are gone before we read them is not followed live (nothing
    was passed on yet: its stored entry is replayed whole when it comes); a gap after that,
    or another leader's events, is a `RelayGap`."""

    def __init__(self) -> None:
        self.leader: str | None = None  # whose events we passed on
        self._next = 0
        self._unfollowed: set[str] = set()

    @property
    def streamed(self) -> bool:
        return self.leader is not None

    def accept(self, raw: bytes) -> list[Item]:
        leader, seq, items = decode_items(raw)
        if leader in self._unfollowed:
            return []
        if self.leader is None:
            if seq != 0:
                self._unfollowed.add(leader)
                return []
            self.leader = leader
        elif leader != self.leader or seq != self._next:
            raise RelayGap(f"relay of {self.leader} jumps to {leader} at {seq}, expected {self._next}")
        self._next = seq + len(items)
        return items


class Publisher:
    """A leader's events to the shared cache, in order, without slowing the generation; only
    once someone follows them."""

    def __init__(self, cache: ResponseCache, key: str, leader: str, check_interval: float) -> None:
        self.cache = cache
        self.key = key
        self.leader = leader
        self.check_interval = check_interval  # a dormant publisher looks for followers this often too
        self.relaying = False  # a follower was seen: everything is published from then on
        self._pending: list[Item] = []  # all of them while dormant: a follower's first batch
        self._sent = 0  # events relayed (or lost trying) before the next batch
        self._more = asyncio.Event()
        self._closing = False
        self._woken: asyncio.Event | None = None  # what a dormant publisher waits on
        self._task = asyncio.create_task(self._run(), name="relay")

    def send(self, items: Iterable[Item]) -> None:
        self._pending.extend(items)
        if self._pending and self.relaying:
            self._more.set()

    async def _until_followed(self) -> bool:
        """Wait until a follower marks the key: woken by the notification its first mark sends,
        or at the next look (every `check_interval`, for a notification that came before we
        listened). False if the generation ends first (a follower then replays the entry).
        Nothing is asked of Redis until then: most generations end unfollowed."""
        async with self.cache.watch(self.key) as woken:
            self._woken = woken
            try:
                while not self._closing:
                    try:
                        async with asyncio.timeout(self.check_interval):
                            await woken.wait()
                    except TimeoutError:
                        pass
                    woken.clear()
                    if self._closing:
                        return False
                    if await self.cache.followed(self.key):
                        return True
                return False
            finally:
                self._woken = None

    async def _run(self) -> None:
        if not await self._until_followed():
            return
        self.relaying = True
        self._more.set()
        while True:
            await self._more.wait()
            self._more.clear()
            batch, self._pending = self._pending, []
            if batch:
                payload = encode_items(self.leader, self._sent, batch)
                self._sent += len(batch)
                if not await self.cache.publish_events(self.key, payload):
                    log.debug("relay of %d event(s) failed; followers that missed them will fail", len(batch))
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        """Everything sent so far is published (before the entry is stored), if anyone follows."""
        self._closing = True
        self._more.set()
        if self._woken is not None:  # dormant: it need not wait for its next look
            self._woken.set()
        await self._task

    def cancel(self) -> None:
        self._task.cancel()
