"""The one place that decides what a generation request gets, for every client protocol.

In order, from the raw body:
  1. the memo: bytes seen before are the same canonical request, so their key is known without
     parsing (proxy/cache/memo.py);
  2. the cache lookup, once per request (unless Cache-Control says not to read);
  3. otherwise: parse, translate to chat, normalize, compute the key (big bodies in a worker
     thread), and remember the bytes in the memo;
  4. single-flight: join a generation of the same key running here or on another proxy, or
     start one (proxy/generation/pipeline.py).
The responder receives a typed outcome: `Served` (a ticket and what rendering it needs) or
`Refused` (an error, and what the cache had done by then, for X-Cache-Status).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..cache.keys import cache_key
from ..cache.memo import BodyMemo, Prepared
from ..cache.policy import CacheControl
from ..cache.store import ResponseCache
from ..errors import ProxyError
from ..normalize import ChatRequest, NormalizeConfig, normalize_chat, parse_body
from ..server.logs import note_generation
from ..translate.base import ClientProtocol
from .offload import off_loop_if_big
from .pipeline import Pipeline, Ticket

# Endpoint label inside cache keys: chat, Responses and Messages requests all become chat
# requests, so an equivalent request in any protocol shares one entry.
CHAT_ENDPOINT = "chat"


@dataclass(frozen=True)
class Served:
    ticket: Ticket
    prepared: Prepared
    client_body: dict | None  # the client's own body (None on a memo hit, unless the protocol echoes it)
    upstream_body: dict | None  # the chat request sent upstream (None: answered from the memo)


@dataclass(frozen=True)
class Refused:
    error: ProxyError
    cache_status: str  # what the cache did before the error: BYPASS if it was never asked


class ServedModel(Protocol):
    """What the request path needs to know about the upstream (proxy/routes/state.py's AppState)."""
    normalize_config: NormalizeConfig

    async def ensure_ready(self) -> None: ...


def prepare(protocol: ClientProtocol, config: NormalizeConfig, raw: bytes | bytearray, cc: CacheControl,
            key: str | None) -> tuple[dict, ChatRequest, str]:
    """Raw bytes to the client's body, the normalized chat request and its key (pure: big bodies
    run it in a worker thread). `key`: already known from the memo."""
    body = parse_body(raw)
    creq = normalize_chat(protocol.to_chat(body) if protocol.to_chat else body, config)
    return body, creq, key or key_of(creq, config, cc)


def key_of(creq: ChatRequest, config: NormalizeConfig, cc: CacheControl) -> str:
    """The one recipe for a generation's cache key."""
    return cache_key(CHAT_ENDPOINT, config.model_identity, creq.key_material, cc.namespace)


class RequestPath:
    def __init__(self, model: ServedModel, memo: BodyMemo, cache: ResponseCache, pipeline: Pipeline) -> None:
        self.model = model
        self.memo = memo
        self.cache = cache
        self.pipeline = pipeline

    def key_of(self, chat_body: dict, cc: CacheControl) -> str:
        """The cache key a chat request with this body gets."""
        config = self.model.normalize_config
        return key_of(normalize_chat(chat_body, config), config, cc)

    async def open(self, raw: bytes | bytearray, protocol: ClientProtocol, cc: CacheControl) -> Served | Refused:
        status = "BYPASS"
        try:
            await self.model.ensure_ready()
            digest = await off_loop_if_big(raw, self.memo.digest, protocol.name, cc.namespace, raw)
            known = self.memo.get(digest)
            if known is not None and cc.read:
                hit, status = await self.cache.lookup(known.key, cc.max_age)
                if hit is not None:
                    self._count_rules(known.rules_fired)
                    body = await off_loop_if_big(raw, parse_body, raw) if protocol.renders_request else None
                    return Served(Ticket(status, hit=hit), known, body, None)
            body, creq, key = await off_loop_if_big(raw, prepare, protocol, self.model.normalize_config, raw, cc,
                                                    known.key if known else None)
            self._count_rules(creq.rules_fired)
            prepared = Prepared(key, creq.client_stream, creq.include_usage, creq.rules_fired, creq.tool_prompt)
            self.memo.put(digest, prepared)
            note_generation(key, creq.upstream_body)
            if not cc.read:
                status = cc.status_without_read if self.cache.backend.enabled else "BYPASS"
            elif known is None:  # (a known body was looked up above, and missed)
                hit, status = await self.cache.lookup(key, cc.max_age)
                if hit is not None:
                    return Served(Ticket(status, hit=hit), prepared, body, creq.upstream_body)
            ticket = await self.pipeline.open(key, creq, cc, status)
        except ProxyError as e:
            return Refused(e, status)
        return Served(ticket, prepared, body, creq.upstream_body)

    def _count_rules(self, fired: tuple[str, ...]) -> None:
        if fired:
            self.model.normalize_config.volatile_rules.count(fired)
