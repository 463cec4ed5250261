"""Everything a handler needs, built once at start-up and kept on the app."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from aiohttp import web

from ..cache.keys import cache_key, model_identity
from ..cache.memo import BodyMemo
from ..cache.policy import CacheControl
from ..cache.store import ResponseCache
from ..config import UPSTREAM_DEFAULT_MODEL, Settings
from ..errors import ProxyError
from ..generation.admission import Admission, Classifier
from ..generation.pipeline import Pipeline
from ..normalize import ChatRequest, NormalizeConfig, normalize_chat
from ..tokens import TokenCounter
from ..upstream.client import UpstreamClient
from ..upstream.profile import MLX_LAUNCHED, UpstreamProfile, discover
from ..upstream.status import UpstreamStatus
from ..upstream.template import TemplateFacts

log = logging.getLogger("mlx_proxy")

# After a failed discovery, requests try again at most this often (the upstream may be starting).
REDISCOVER_INTERVAL = 5.0

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
    profile: UpstreamProfile | None = None
    template: TemplateFacts | None = None  # what the served chat template does (None: unknown)
    _template_checked: bool = field(default=False, repr=False)
    _last_discovery: float = field(default=-REDISCOVER_INTERVAL, repr=False)

    @classmethod
    def build(cls, settings: Settings, status: UpstreamStatus) -> AppState:
        upstream = UpstreamClient(settings)
        cache = ResponseCache.from_settings(settings)
        admission = Admission(settings.max_concurrency or 1, settings.max_queue)
        classifier = Classifier.build(settings.background_patterns, settings.background_max_tokens)
        pipeline = Pipeline(settings, upstream, cache, admission, classifier, status)
        return cls(settings, status, upstream, cache, admission, pipeline,
                   NormalizeConfig.from_settings(settings), TokenCounter(settings.tokenizer_path), BodyMemo())

    def prepare(self, chat_body: dict, cc: CacheControl, key: str | None = None) -> tuple[ChatRequest, str]:
        """Normalize and compute the key (unless the memo already knows it): once per request.
        Touches no state (big bodies are prepared in a worker thread); the caller counts the
        rules that fired."""
        creq = normalize_chat(chat_body, self.normalize_config)
        if key is None:
            key = cache_key(CHAT_ENDPOINT, self.normalize_config.model_identity, creq.key_material, cc.namespace)
        return creq, key

    def count_rules(self, fired: tuple[str, ...]) -> None:
        if fired:
            self.normalize_config.volatile_rules.count(fired)

    @property
    def model_named(self) -> bool:
        """The user (or the launcher) named the served model: keys need nothing from the upstream."""
        return self.settings.served_model != UPSTREAM_DEFAULT_MODEL

    async def ensure_profile(self) -> None:
        """Learn what the upstream is, once (see proxy/upstream/profile.py). Until it is known,
        a request whose cache key needs the upstream's identity cannot be served: 503."""
        if self.profile is not None:
            return
        if self.status.managed:
            self._adopt(MLX_LAUNCHED)
            return
        now = time.monotonic()
        if now - self._last_discovery >= REDISCOVER_INTERVAL:
            self._last_discovery = now
            profile = await discover(self.upstream)
            if profile is not None:
                self._adopt(profile)
                return
        if not self.model_named:
            raise ProxyError("upstream_unreachable", "the upstream does not say which model it serves "
                             "(GET /v1/models failed); retry, or start the proxy with --served-model",
                             retry_after=int(REDISCOVER_INTERVAL))

    def _adopt(self, profile: UpstreamProfile) -> None:
        self.profile = profile
        if self.settings.max_concurrency == 0:
            self.admission.set_capacity(profile.concurrency)
        changes: dict = {"top_logprobs_max": profile.top_logprobs_max}
        if not self.model_named:
            changes["model_identity"] = model_identity(profile.identity, self.settings.model_fingerprint)
        self.normalize_config = replace(self.normalize_config, **changes)
        log.info("upstream: %s serving %s; up to %d generation(s) at once", profile.kind,
                 ", ".join(profile.models) or "(unnamed)", self.admission.max_concurrency)

    async def ensure_ready(self) -> None:
        """What a generation needs to know before its key can be computed: the upstream's
        profile, and what the served template does (read once, with the tokenizer)."""
        await self.ensure_profile()
        if not self._template_checked:
            self._template_checked = True
            facts = await self.tokens.template_facts()
            if facts is not None:
                self._learnt_template(facts)

    def _learnt_template(self, facts: TemplateFacts) -> None:
        self.template = facts
        tool_prompt = self.settings.tool_prompt == "auto" and not facts.renders_tools
        changes: dict = {"tool_prompt": tool_prompt, "opens_reasoning": facts.opens_reasoning}
        if tool_prompt:  # a prompt of another shape: its answers are not the plain template's
            changes["model_identity"] = self.normalize_config.model_identity + "+tool-prompt"
            log.info("the served chat template drops tools: they are written into the prompt")
        self.normalize_config = replace(self.normalize_config, **changes)

    async def start(self) -> None:
        self.tokens.preload()
        await self.cache.start()
        try:
            await self.ensure_profile()
        except ProxyError:
            log.warning("the upstream did not say what it is yet; asking again with the first request")

    async def close(self) -> None:
        await self.pipeline.close()
        await self.cache.close()
        await self.upstream.close()


STATE_KEY = web.AppKey("state", AppState)
# The X-Cache-Status a request got, for the access log.
CACHE_STATUS_KEY = web.RequestKey("cache_status", str)
CACHE_STATUS_HEADER = "X-Cache-Status"
