"""The upstreams behind the proxy: routing each generation, watching health, warming up.

One upstream (the default) is a pool of one: no digest, no routing, no health checks beyond
what the launcher already reports; behaviour is the single-server proxy's. With several
(`--upstream A --upstream B ...`), each generation is routed by its conversation's prefix
(proxy/pool/routing.py), each member has its own slots and queue, a member that fails to
connect is taken out at once and put back by the health checks, and one that comes back from a
restart is warmed up with the prompts it served last (proxy/pool/warm_log.py).
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from contextlib import suppress

import orjson

from ..cache.store import ResponseCache
from ..config import Settings
from ..generation.admission import BACKGROUND, Admission
from ..generation.observer import GenerationObserver
from ..upstream.client import CHAT_PATH, UpstreamClient
from ..upstream.profile import UpstreamProfile, discover
from ..upstream.status import UpstreamStatus
from .member import Member
from .routing import choose, prefix_digest
from .warm_log import WarmLog

log = logging.getLogger("mlx_proxy.pool")

# How long a conversation's route is remembered after its last turn (a working session's pauses;
# each turn that reads it from Redis renews it).
ROUTE_TTL = 6 * 3600
# Routes this proxy remembers itself (when the cache is not shared, or Redis is down).
LOCAL_ROUTES = 10_000


class Route:
    """Where one generation goes: the member, why, and its conversation's digest."""
    __slots__ = ("member", "reason", "digest")

    def __init__(self, member: Member, reason: str, digest: str | None) -> None:
        self.member, self.reason, self.digest = member, reason, digest


class UpstreamPool:
    def __init__(self, settings: Settings, primary_status: UpstreamStatus, cache: ResponseCache,
                 observer: GenerationObserver | None = None) -> None:
        """`primary_status`: the first upstream's (the launcher moves it for its child);
        `observer`: told of routing decisions and reused prefixes (the metrics)."""
        self.settings = settings
        self.cache = cache
        self.observer = observer or GenerationObserver()
        cap = settings.max_concurrency or 1
        self.members = [Member(url.rstrip("/"), UpstreamClient(settings, url),
                               Admission(cap, settings.max_queue),
                               primary_status if i == 0 else UpstreamStatus(state="starting"),
                               WarmLog(settings.warmup_max_bytes))
                        for i, url in enumerate(settings.upstream)]
        self._by_url = {m.url: m for m in self.members}
        self._local: OrderedDict[str, str] = OrderedDict()  # digest -> url
        self._turns = itertools.count()
        self._watcher: asyncio.Task | None = None
        self._warming: set[asyncio.Task] = set()

    @property
    def primary(self) -> Member:
        return self.members[0]

    @property
    def pooled(self) -> bool:
        return len(self.members) > 1

    @property
    def serving(self) -> bool:
        return any(m.status.serving for m in self.members)

    @property
    def remembers_prompts(self) -> bool:
        """Whether generations note their prompts for warm-ups: a restart can be seen (a pool,
        or the launcher's child) and warm-ups are wanted."""
        return self.settings.warmup_prompts > 0 and (self.pooled or self.primary.managed)

    # --- routing -----------------------------------------------------------------------------

    async def route(self, body: dict, steerable: bool, exclude: frozenset[Member] = frozenset()) -> Route | None:
        """The member for a generation of canonical chat `body`; None when no member that has
        not failed it (`exclude`) serves now. `steerable`: a background or subagent request,
        sent elsewhere when its conversation's member is busy (proxy/pool/routing.py)."""
        if not self.pooled:
            return None if self.primary in exclude else Route(self.primary, "only_healthy", self._digest(body))
        digest = prefix_digest(body)
        remembered = await self._recall(digest)
        pool_models = self.primary.models
        choice = choose([m.candidate(pool_models) for m in self.members if m not in exclude], digest, remembered,
                        policy=self.settings.routing, steerable=steerable,
                        max_queued=self.settings.affinity_max_queued, turn=next(self._turns))
        if choice is None:
            return None
        member = self._by_url[choice.url]
        if choice.reason not in ("steered", "affinity"):
            await self._remember(digest, member.url)
        member.routed[choice.reason] += 1
        self.observer.routed(member.url, choice.reason)
        return Route(member, choice.reason, digest)

    def _digest(self, body: dict) -> str | None:
        return prefix_digest(body) if self.remembers_prompts else None

    async def _recall(self, digest: str) -> str | None:
        shared = await self.cache.recall_route(digest, ROUTE_TTL)
        return shared if shared is not None else self._local.get(digest)

    async def _remember(self, digest: str, url: str) -> None:
        self._local[digest] = url
        self._local.move_to_end(digest)
        while len(self._local) > LOCAL_ROUTES:
            self._local.popitem(last=False)
        await self.cache.remember_route(digest, url, ROUTE_TTL)

    def served(self, route: Route, payload: bytes, cached_tokens: int | None) -> None:
        """A generation went through `route`: note its prompt for warm-ups, and count the
        prompt tokens the member's KV cache already held."""
        if route.digest is not None and self.remembers_prompts and route.reason != "steered":
            route.member.warm.note(route.digest, payload)
        if cached_tokens:
            route.member.prefix_tokens_reused += cached_tokens
            self.observer.prefix_reused(route.member.url, cached_tokens)

    def unreachable(self, member: Member) -> None:
        """A request could not connect: out of the pool until a health check says otherwise
        (the launcher's own child is the launcher's to judge)."""
        if self.pooled and not member.managed and member.status.serving:
            log.warning("upstream %s unreachable; taken out of the pool", member.url)
            member.status.set("failed", "unreachable")

    def passthrough_member(self) -> Member:
        """Where a request that is not a generation goes: the first member that serves."""
        return next((m for m in self.members if m.status.serving), self.primary)

    # --- health and warm-ups -----------------------------------------------------------------

    def start(self) -> None:
        if self.pooled or self.primary.managed:
            self._watcher = asyncio.create_task(self._watch())

    async def close(self) -> None:
        tasks = [t for t in (self._watcher, *self._warming) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with suppress(asyncio.CancelledError):
                await t
        for m in self.members:
            await m.client.close()

    async def _watch(self) -> None:
        while True:
            await asyncio.gather(*(self._check(m) for m in self.members))
            await asyncio.sleep(self.settings.pool_health_interval)

    async def _check(self, member: Member) -> None:
        """Update one member's health; warm it up when it is back from a restart."""
        status = member.status
        if member.managed:  # the launcher moves its state and counts its restarts
            back = status.serving and status.restarts > member.restarts_seen
        else:
            profile = await discover(member.client)
            if profile is None:
                if status.state != "failed":
                    status.set("failed", "not answering")
                return
            if member is not self.primary:  # the first one's is AppState's (it shapes the cache keys)
                self._adopt(member, profile)
            back = status.state == "failed"  # it was out (not merely starting): it came back
            if back:
                status.record_restart("came back")
            if not status.serving or status.detail != "answering":
                status.set("ready", "answering")
        if back:
            member.restarts_seen = status.restarts
            self._warm_up(member)

    def _adopt(self, member: Member, profile: UpstreamProfile) -> None:
        if member.profile is None and self.settings.max_concurrency == 0:
            member.admission.set_capacity(profile.concurrency)
        member.profile = profile

    def _warm_up(self, member: Member) -> None:
        prompts = member.warm.newest(self.settings.warmup_prompts)
        if prompts:
            task = asyncio.create_task(self._replay(member, prompts))
            self._warming.add(task)
            task.add_done_callback(self._warming.discard)

    async def _replay(self, member: Member, prompts: list[tuple[str, bytes]]) -> None:
        """Prefill each prompt again, newest first, one at a time, each only once the member has
        nothing else to do. A real turn that comes meanwhile stops a warm-up of another
        conversation (make_way), though mlx_lm.server only notices at the second prefill
        step after its client left: such a turn may still wait for part of that prefill."""
        log.info("warming up %s with %d prompt(s)", member.url, len(prompts))
        member.warm_pending = len(prompts)
        try:
            for digest, payload in prompts:
                if not await self._warm_one(member, digest, payload):
                    return
        finally:
            member.warm_pending = 0

    async def _warm_one(self, member: Member, digest: str, payload: bytes) -> bool:
        """One warm-up, once the member is idle; False when the member failed it (the rest of
        the replay is then pointless)."""
        try:
            await member.admission.wait_idle()
            task = asyncio.create_task(self._prefill(member, payload))
            member.warming = (digest, task)
            try:
                await asyncio.wait({task})
            finally:
                member.warming = None
                if not task.done():  # the replay itself is being stopped
                    task.cancel()
        finally:
            member.warm_pending -= 1
        if task.cancelled():
            return True  # a real turn made way for itself
        if task.exception() is not None:
            log.info("warm-up of %s stopped: %s", member.url, task.exception())
            return False
        member.warmed += 1
        return True

    async def _prefill(self, member: Member, payload: bytes) -> None:
        """One prompt again, as a 1-token background request."""
        body = orjson.loads(payload)
        body.update(max_tokens=1, stream=True)
        body.pop("max_completion_tokens", None)
        async with member.admission.slot(BACKGROUND):
            async for _ in member.client.stream_json_batches(CHAT_PATH, body):
                pass

    async def make_way(self, route: Route) -> None:
        """Before a real turn goes to its member: a warm-up of its own conversation that is
        under way is waited for (its prefill is the quickest way to a warm cache); one of
        another conversation is stopped (closing its stream stops the server's prefill)."""
        warming = route.member.warming
        if warming is None:
            return
        digest, task = warming
        if digest == route.digest:
            await asyncio.wait({task})
        else:
            task.cancel()

    # --- visibility ---------------------------------------------------------------------------

    def admission_json(self) -> dict:
        """The members' queues as one (what /health's "queue" showed for a single upstream)."""
        parts = [m.admission.to_json() for m in self.members]
        if len(parts) == 1:
            return parts[0]
        total = {k: sum(p[k] for p in parts) for k in ("running", "queued", "max_concurrency", "max_queue",
                                                        "admitted", "rejected")}
        total["queued_by_class"] = {c: sum(p["queued_by_class"][c] for p in parts) for c in parts[0]["queued_by_class"]}
        admitted = total["admitted"]
        total["avg_wait_s"] = round(sum(p["avg_wait_s"] * p["admitted"] for p in parts) / admitted, 3) if admitted else 0.0
        total["max_wait_s"] = max(p["max_wait_s"] for p in parts)
        return total

    def to_json(self) -> list[dict]:
        return [m.to_json(self.primary.models) for m in self.members]
