"""Everything a handler needs, built once at start-up and kept on the app."""
from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..admission import Admission, Classifier
from ..cache.keys import cache_key
from ..cache.store import ResponseCache
from ..cache_control import CacheControl
from ..memo import BodyMemo
from ..config import Settings
from ..normalize import ChatRequest, NormalizeConfig, normalize_chat
from ..pipeline import Pipeline
from ..tokens import TokenCounter
from ..upstream import UpstreamClient
from ..upstream_status import UpstreamStatus

# Endpoint label inside cache keys: chat, Responses and Messages requests all become chat
# requests, so an equivalent request in any protocol shares one entry.
CHAT_ENDPOINT = "chat"


@dataclass
class AppState:
    settings: Settings
    status: UpstreamStatus
    upstream: UpstreamClient
    cache: ResponseCache
    admission: Admission
    pipeline: Pipeline
    normalize_config: NormalizeConfig
    tokens: TokenCounter
    memo: BodyMemo

    @classmethod
    def build(cls, settings: Settings, status: UpstreamStatus) -> AppState:
        upstream = UpstreamClient(settings)
        cache = ResponseCache.from_settings(settings)
        admission = Admission(settings.max_concurrency, settings.max_queue)
        classifier = Classifier.build(settings.background_patterns, settings.background_max_tokens)
        pipeline = Pipeline(settings, upstream, cache, admission, classifier, status)
        return cls(settings, status, upstream, cache, admission, pipeline,
                   NormalizeConfig.from_settings(settings), TokenCounter(settings.tokenizer_path), BodyMemo())

    def prepare(self, chat_body: dict, cc: CacheControl, key: str | None = None) -> tuple[ChatRequest, str]:
        """Normalize and compute the key (unless the memo already knows it): once per request."""
        creq = normalize_chat(chat_body, self.normalize_config)
        self.count_rules(creq.rules_fired)
        if key is None:
            key = cache_key(CHAT_ENDPOINT, self.normalize_config.model_identity, creq.key_material, cc.namespace)
        return creq, key

    def count_rules(self, fired: tuple[str, ...]) -> None:
        if fired:
            self.normalize_config.volatile_rules.count(fired)

    async def start(self) -> None:
        self.tokens.preload()
        await self.cache.start()

    async def close(self) -> None:
        await self.pipeline.close()
        await self.cache.close()
        await self.upstream.close()


STATE_KEY = web.AppKey("state", AppState)
# The X-Cache-Status a request got, for the access log.
CACHE_STATUS_KEY = web.RequestKey("cache_status", str)
