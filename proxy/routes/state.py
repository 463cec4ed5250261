"""Everything a handler needs, built once at start-up and kept on the app; and what the proxy
has learnt about the upstream (its profile, its template), which shapes normalization."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from aiohttp import web

from ..cache.keys import model_identity
from ..cache.memo import BodyMemo
from ..cache.store import BackendObserver, ResponseCache
from ..config import UPSTREAM_DEFAULT_MODEL, Settings
from ..errors import ProxyError
from ..generation.admission import Classifier
from ..generation.observer import GenerationObserver
from ..generation.pipeline import Pipeline
from ..generation.request_path import RequestPath
from ..normalize import NormalizeConfig
from ..pool.pool import UpstreamPool
from ..tokens import TokenCounter
from ..upstream.client import UpstreamClient
from ..upstream.profile import MLX_LAUNCHED, UpstreamProfile, discover
from ..upstream.status import UpstreamStatus
from ..upstream.template import TemplateFacts

log = logging.getLogger("mlx_proxy")

# After a failed discovery, requests try again at most this often (the upstream may be starting).
REDISCOVER_INTERVAL = 5.0

@dataclass
class AppState:
    settings: Settings
    pool: UpstreamPool
    cache: ResponseCache
    pipeline: Pipeline
    normalize_config: NormalizeConfig
    tokens: TokenCounter
    template: TemplateFacts | None = None  # what the served chat template does (None: unknown)
    _template_checked: bool = field(default=False, repr=False)
    _last_discovery: float = field(default=-REDISCOVER_INTERVAL, repr=False)
    path: RequestPath = field(init=False, repr=False)  # reads normalize_config as it is learnt

    def __post_init__(self) -> None:
        self.path = RequestPath(self, BodyMemo(), self.cache, self.pipeline)

    @classmethod
    def build(cls, settings: Settings, status: UpstreamStatus, *, generations: GenerationObserver | None = None,
              backend_calls: BackendObserver | None = None) -> AppState:
        """`generations`, `backend_calls`: who observes the pipeline and the cache backend (the
        metrics), given to them as they are built."""
        cache = ResponseCache.from_settings(settings, backend_calls)
        pool = UpstreamPool(settings, status, cache, generations)
        classifier = Classifier.build(settings.background_patterns, settings.background_max_tokens)
        pipeline = Pipeline(settings, pool, cache, classifier, generations)
        return cls(settings, pool, cache, pipeline,
                   NormalizeConfig.from_settings(settings), TokenCounter(settings.tokenizer_path))

    @property
    def status(self) -> UpstreamStatus:
        """The first upstream's life (the launcher moves it for its own child)."""
        return self.pool.primary.status

    @property
    def profile(self) -> UpstreamProfile | None:
        """What the first upstream is (None until it said)."""
        return self.pool.primary.profile

    @property
    def upstream(self) -> UpstreamClient:
        """The first upstream's client (discovery, the readiness probe)."""
        return self.pool.primary.client

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
        self.pool.primary.profile = profile
        if self.settings.max_concurrency == 0:
            self.pool.primary.admission.set_capacity(profile.concurrency)
        changes: dict = {"top_logprobs_max": profile.top_logprobs_max}
        if not self.model_named:
            changes["model_identity"] = model_identity(profile.identity, self.settings.model_fingerprint)
        self.normalize_config = replace(self.normalize_config, **changes)
        log.info("upstream: %s serving %s; up to %d generation(s) at once", profile.kind,
                 ", ".join(profile.models) or "(unnamed)", self.pool.primary.admission.max_concurrency)

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
        self.pool.start()
        try:
            await self.ensure_profile()
        except ProxyError:
            log.warning("the upstream did not say what it is yet; asking again with the first request")

    async def close(self) -> None:
        await self.pipeline.close()
        await self.pool.close()
        await self.cache.close()


STATE_KEY = web.AppKey("state", AppState)
# What the cache did for a request and the key it used: the access log reads them, and the
# response hook (proxy/server/middlewares.py) writes them as X-Cache-Status and X-Cache-Key on
# every answer, errors included.
CACHE_STATUS_KEY = web.RequestKey("cache_status", str)
CACHE_KEY_KEY = web.RequestKey("cache_key", str)
CACHE_STATUS_HEADER = "X-Cache-Status"
CACHE_KEY_HEADER = "X-Cache-Key"
