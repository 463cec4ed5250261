"""Single-flight generation below the request path: flights, their producers, the watchdog's view.

`Pipeline.open()` turns a normalized chat request the cache did not answer, and its key, into
a `Ticket`: where the events come from (a flight this process runs, or one another proxy runs)
and the X-Cache-Status to announce before the first byte. (A cache hit is a Ticket too, made
by proxy/generation/request_path.py, which decides the whole path.) Generations run as tasks of their own so a
client that leaves does not cancel a result others wait for or the cache will keep; one that
nobody waits for and that cannot be stored is cancelled at once, which closes the upstream
stream and stops mlx_lm.server generating.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from ..cache.policy import CacheControl
from ..cache.relay import Publisher, RelayGap, RelayReader
from ..cache.store import CacheHit, ResponseCache
from ..completion import Completion, CompletionBuilder, Finish
from ..config import Settings
from ..errors import ProxyError
from ..normalize import ChatRequest
from ..server.logs import note_usage
from ..tokens import estimate_tokens
from ..pool.pool import Route, UpstreamPool
from ..upstream.client import CHAT_PATH, Comment
from .admission import BACKGROUND, Classifier
from .assemble import StreamAssembler
from .flight import Flight, Item
from .observer import GenerationObserver

log = logging.getLogger("mlx_proxy.pipeline")

# mlx_lm.server's prefill progress comment, `: keepalive PROCESSED/TOTAL`, sent once per
# --prefill-step-size chunk; PROCESSED == TOTAL comes with the first token's computation.
_PREFILL_PROGRESS = re.compile(r"keepalive (\d+)/(\d+)")


def prefill_finished(comment: str) -> bool:
    """Whether an upstream comment says the prompt has been processed."""
    m = _PREFILL_PROGRESS.search(comment)
    return m is not None and int(m.group(1)) >= int(m.group(2))


@dataclass(frozen=True)
class Silence:
    """How long one running generation has heard nothing from the upstream, and in which phase."""
    seconds: float
    prefilling: bool


def _leader_lost() -> ProxyError:
    """A follower on another proxy had passed on part of a generation whose leader went away."""
    return ProxyError("upstream_error", "the proxy generating this answer went away mid-stream; retry")


def _relay_gap() -> ProxyError:
    """A follower on another proxy missed part of the generation it was passing on."""
    return ProxyError("upstream_error", "part of the answer relayed from the proxy generating it was lost "
                      "(the shared cache was flushed or failed); retry")


@dataclass
class Ticket:
    """What one request receives: a cache status and a source of events."""
    status: str  # HIT | MISS | BYPASS | REFRESH | COALESCED | ERROR
    hit: CacheHit | None = None
    flight: Flight | None = None
    _pipeline: Pipeline | None = None
    _released: bool = False

    @property
    def age(self) -> float | None:
        return self.hit.age if self.hit else None

    async def batches(self, idle: float) -> AsyncIterator[list[Item]]:
        """The events in batches ([] after `idle` seconds of silence); a hit is one batch."""
        if self.hit is not None:
            note_usage(self.hit.completion.usage)
            yield list(self.hit.completion.events())
            return
        assert self.flight is not None
        async for batch in self.flight.batches(idle):
            yield batch
        if self.flight.completion is not None:
            note_usage(self.flight.completion.usage)

    async def result(self) -> Completion:
        completion = self.hit.completion if self.hit is not None else await self.flight.result()
        note_usage(completion.usage)
        return completion

    def release(self) -> None:
        """The client is gone or served; call exactly once (idempotent)."""
        if not self._released and self.flight is not None and self._pipeline is not None:
            self._released = True
            self._pipeline._leave(self.flight)


class Pipeline:
    def __init__(self, settings: Settings, pool: UpstreamPool, cache: ResponseCache, classifier: Classifier,
                 observer: GenerationObserver | None = None) -> None:
        self.settings = settings
        self.pool = pool
        self.cache = cache
        self.classifier = classifier
        self.flights: dict[str, Flight] = {}
        self.orphans = 0  # generations still running for the cache after their clients left
        self._last_generation_end = time.monotonic()
        self.cancelled = 0
        self.observer = observer or GenerationObserver()

    # --- entry -------------------------------------------------------------------------------
    async def open(self, key: str, req: ChatRequest, cc: CacheControl, status: str = "MISS") -> Ticket:
        """A generation for a request the cache did not answer: joined if one of the same key
        runs here or on another proxy, else started. `status`: what the cache lookup said
        (MISS, ERROR), or REFRESH/BYPASS when it was not read (proxy/generation/request_path.py)."""
        flight = self.flights.get(key)
        if flight is not None and not flight.done:
            flight.followers += 1
            return Ticket("COALESCED", flight=flight, _pipeline=self)
        self._check_serving()
        storable = cc.write and status != "BYPASS"
        flight = Flight(key, storable, self.classifier.classify(req.upstream_body))
        flight.followers = 1
        self.flights[key] = flight
        lease, remote = None, False
        # Cross-proxy followers take whatever entry the leader stores; a request that refuses
        # existing entries (no-cache, max-age) generates anew instead.
        if storable and cc.accepts_any_entry:
            try:
                lease = await self.cache.acquire_lease(key)
            except BaseException:  # the client left meanwhile: no producer will ever run
                del self.flights[key]
                raise
            if lease is None:
                status, remote = "COALESCED", True  # another proxy on the shared Redis leads
        flight.task = asyncio.create_task(self._produce(flight, req, cc, lease, remote))
        return Ticket(status, flight=flight, _pipeline=self)

    def _check_serving(self) -> None:
        if not self.pool.serving:
            status = self.pool.primary.status
            detail = f" ({status.detail})" if status.detail else ""
            raise ProxyError("upstream_restarting", f"the model server is {status.state}{detail}; retry shortly",
                             retry_after=status.retry_after)

    # --- followers -----------------------------------------------------------------------------
    def _leave(self, flight: Flight) -> None:
        flight.followers -= 1
        if flight.followers > 0 or flight.done or flight.task is None:
            return
        # A background request (Claude Code's Warmup, a title) whose client left is not worth a
        # busy server: nobody retries it (Claude Code exits without waiting for its title), and
        # on a 2-core machine it would delay the next real request for minutes.
        keep = (flight.storable and flight.admitted and flight.priority != BACKGROUND
                and self.orphans < self.settings.max_orphan_generations)
        if keep:
            self.orphans += 1
            flight.task.add_done_callback(lambda _t: self._orphan_done())
            log.info("client left; generation continues for the cache")
        else:
            self.cancelled += 1
            flight.task.cancel()

    def _orphan_done(self) -> None:
        self.orphans -= 1

    # --- producer ------------------------------------------------------------------------------
    async def _produce(self, flight: Flight, req: ChatRequest, cc: CacheControl, lease: str | None,
                       remote: bool) -> None:
        renewer: asyncio.Task | None = None
        try:
            if remote:
                lease = await self._wait_for_remote(flight, req)
                if flight.done:
                    return
            if lease is not None:  # renewed from now until it is released: queued, generating, storing
                renewer = asyncio.create_task(self._renew(flight.key, lease))
            completion = await self._generate_relayed(flight, req, lease)
            flight.complete(completion)
            outcome = await self._store(flight, completion, cc, lease)
            if outcome == "stored":
                lease = None  # released with the entry, in the same round trip
            self.observer.store_outcome(outcome)
        except ProxyError as e:
            self.observer.failed(e.code)
            flight.fail(e)
        except asyncio.CancelledError:
            flight.fail(ProxyError("upstream_error", "generation cancelled"))
            raise
        except Exception as e:  # never leave followers hanging on a bug
            log.exception("generation failed")
            flight.fail(ProxyError("internal_error", f"internal error: {type(e).__name__}"))
        finally:
            if renewer is not None:
                renewer.cancel()
            if flight.admitted:
                self._last_generation_end = time.monotonic()
            if lease is not None:
                await self.cache.release_lease(flight.key, lease)
            if self.flights.get(flight.key) is flight:
                del self.flights[flight.key]

    async def _store(self, flight: Flight, completion: Completion, cc: CacheControl, lease: str | None) -> str:
        """Store a finished generation (releasing `lease` with it); the outcome, or why it was
        not stored (for metrics)."""
        if not flight.storable:
            return "skipped_not_requested"  # no-store, or the cache is off
        if not completion.cacheable:
            return "skipped_not_cacheable"  # no output, or an unfinished finish reason
        stored = await self.cache.store(flight.key, completion, cc.ttl, lease)
        return "stored" if stored else "skipped_backend"

    async def _wait_for_remote(self, flight: Flight, req: ChatRequest) -> str | None:
        """Follow another proxy's generation through the shared cache, live: its relayed events
        as they come, then its stored entry. Lead if it dies before we passed anything on; if
        it dies after, fail retryably (a new generation could say something else)."""
        deadline = time.monotonic() + self.settings.total_timeout
        while time.monotonic() < deadline:
            relay = RelayReader()
            try:
                async for item in self.cache.follow(flight.key, deadline - time.monotonic()):
                    if isinstance(item, list):
                        for raw in item:
                            flight.push_many(relay.accept(raw))
                    elif isinstance(item, CacheHit):
                        self._complete_from_entry(flight, item.completion, streamed=relay.streamed)
                        return None
            except RelayGap as gap:
                log.info("the relay being followed lost events (%s)", gap)
                raise _relay_gap() from None
            if relay.streamed:
                raise _leader_lost()
            lease = await self.cache.acquire_lease(flight.key)
            if lease is not None:
                return lease  # the leader vanished without a result: generate it ourselves
        raise ProxyError("upstream_timeout", "gave up waiting for another proxy's generation")

    def _complete_from_entry(self, flight: Flight, completion: Completion, streamed: bool) -> None:
        if not streamed:  # no live events came through (relay off or failed): replay the entry
            flight.push_many(list(completion.events()))
        elif not any(isinstance(item, Finish) for item in flight.items):
            raise _relay_gap()  # its last events never came through
        flight.complete(completion)

    async def _generate_relayed(self, flight: Flight, req: ChatRequest, lease: str | None) -> Completion:
        """Generate; while we hold the shared lease and a follower on another proxy reads them,
        relay the events (from the first, whenever it came; all of them before the entry is
        stored, so it never misses the end)."""
        if lease is None or not self.cache.backend.relays_events:
            return await self._generate(flight, req)
        publisher = Publisher(self.cache, flight.key, lease, self.cache.poll_interval)
        flight.relay = publisher.send
        try:
            completion = await self._generate(flight, req)
            await publisher.close()
            return completion
        finally:
            flight.relay = None
            publisher.cancel()

    async def _generate(self, flight: Flight, req: ChatRequest) -> Completion:
        """On the pool member the request is routed to; on another one if that member cannot
        be reached before anything came from it (nothing was passed on: a clean retry)."""
        failed: frozenset = frozenset()
        while True:
            route = await self.pool.route(req.upstream_body, flight.priority == BACKGROUND or req.subagent, failed)
            if route is None:
                self._check_serving()
                raise ProxyError("upstream_unreachable", "no upstream of the pool could be reached")
            member = route.member
            if flight.priority != BACKGROUND:
                await self.pool.make_way(route)
            async with member.admission.slot(flight.priority) as waited:
                self.observer.queue_waited(waited)
                status = member.status
                if not status.serving:
                    if self.pool.pooled:  # it went away while we waited: another member, now
                        failed |= {member}
                        continue
                    if not await status.wait_serving(self.settings.first_token_timeout):
                        self._check_serving()  # a single upstream: queued requests wait out its restart
                flight.admitted = True  # generating from here on (a restart aborts it; a leaver may orphan it)
                flight.member = member
                flight.last_activity = time.monotonic()
                try:
                    return await self._run_upstream(flight, req, route)
                except ProxyError as e:
                    if e.code != "upstream_unreachable" or flight.items:
                        raise
                    self.pool.unreachable(member)
                    if not self.pool.pooled:
                        raise
                    failed |= {member}
                    flight.admitted, flight.member = False, None

    async def _run_upstream(self, flight: Flight, req: ChatRequest, route: Route) -> Completion:
        assembler = StreamAssembler(req.tools, estimate_prompt=lambda: estimate_tokens(req.upstream_body),
                                    in_reasoning=req.opens_reasoning)
        builder = CompletionBuilder(model=self.settings.served_model, created=int(time.time()))
        start, first = time.monotonic(), True
        payload = orjson.dumps(req.upstream_body)
        async for batch in route.member.client.stream_json_batches(CHAT_PATH, req.upstream_body, payload):
            chunks: list[dict] = []
            for item in batch:  # comments pass in their place; chunks between them go together
                if isinstance(item, Comment):
                    self._assemble(flight, assembler, builder, chunks)
                    chunks = []
                    if prefill_finished(item.text):
                        flight.prefilling = False
                    flight.push(item)
                else:
                    if first:
                        first = False
                        flight.prefilling = False
                        self.observer.first_token(time.monotonic() - start)
                    chunks.append(item)
            self._assemble(flight, assembler, builder, chunks)
        events = assembler.finish()
        builder.extend(events)
        flight.push_many(events)
        completion = builder.build()
        self.observer.generated(completion, time.monotonic() - start)
        self.pool.served(route, payload, completion.usage.cached_tokens if completion.usage else None)
        return completion

    @staticmethod
    def _assemble(flight: Flight, assembler: StreamAssembler, builder: CompletionBuilder, chunks: list[dict]) -> None:
        if chunks:
            events = assembler.feed_many(chunks)
            builder.extend(events)
            flight.push_many(events)

    async def _renew(self, key: str, lease: str) -> None:
        interval = self.cache.lease_renew_interval
        while True:
            await asyncio.sleep(interval)
            if not await self.cache.renew_lease(key, lease):
                log.warning("lost the generation lease; another proxy may start the same generation")
                return

    async def close(self) -> None:
        tasks = [f.task for f in self.flights.values() if f.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- for the wedge watchdog ----------------------------------------------------------------
    def silences(self) -> list[Silence]:
        """For each generation holding an upstream slot: seconds since it last heard from the
        upstream (a token or a prefill keep-alive), and whether it is still prefilling."""
        now = time.monotonic()
        return [Silence(now - f.last_activity, f.prefilling) for f in self._on_primary()]

    def idle_for(self) -> float:
        """Seconds since a generation last ran (0 while one runs)."""
        if self._on_primary():
            return 0.0
        return time.monotonic() - self._last_generation_end

    def abort_generations(self, error: ProxyError) -> int:
        """Fail every generation holding an upstream slot with `error` (the server is being
        restarted); queued ones stay queued and run once it serves again."""
        aborted = self._on_primary()
        for flight in aborted:
            flight.fail(error)
            if flight.task is not None:
                flight.task.cancel()
        return len(aborted)

    def _on_primary(self) -> list[Flight]:
        """Generations running on the first upstream (the launcher's child: the one its
        watchdog watches and restarts)."""
        primary = self.pool.primary
        return [f for f in self.flights.values() if f.admitted and not f.done and f.member is primary]

    def to_json(self) -> dict:
        return {"in_flight": len(self.flights), "orphans": self.orphans, "cancelled": self.cancelled}
