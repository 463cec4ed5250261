"""One upstream of the pool: its client, its slots and queue, its health, what it served."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from ..generation.admission import Admission
from ..upstream.client import UpstreamClient
from ..upstream.profile import UpstreamProfile
from ..upstream.status import UpstreamStatus
from .routing import Candidate, same_model
from .warm_log import WarmLog


@dataclass(eq=False)  # each member is itself (hashable by identity: a set of failed ones)
class Member:
    url: str
    client: UpstreamClient
    admission: Admission  # its own cap (what it takes) and queue
    # Moved by the launcher for its own child (managed), else by the pool's health checks.
    status: UpstreamStatus
    warm: WarmLog
    profile: UpstreamProfile | None = None
    restarts_seen: int = 0  # restarts of it the pool has warmed up after
    routed: Counter = field(default_factory=Counter)  # reason -> generations sent to it
    warmed: int = 0  # prompts prefilled again after its restarts
    warming: tuple[str, asyncio.Task] | None = None  # the warm-up prefilling now: (digest, task)
    warm_pending: int = 0  # warm-ups of the current replay not yet run
    prefix_tokens_reused: int = 0  # prompt tokens its KV cache already held (cached_tokens)

    @property
    def managed(self) -> bool:
        return self.status.managed

    @property
    def models(self) -> tuple[str, ...]:
        return self.profile.models if self.profile is not None else ()

    def candidate(self, pool_models: tuple[str, ...]) -> Candidate:
        a = self.admission
        return Candidate(self.url, self.status.serving, same_model(pool_models, self.models),
                         a.running, a.queued, a.max_concurrency)

    def to_json(self, pool_models: tuple[str, ...]) -> dict:
        a = self.admission
        return {"url": self.url, **self.status.to_json(), "serves_pool_model": same_model(pool_models, self.models),
                "profile": self.profile.to_json() if self.profile else None,
                "running": a.running, "queued": a.queued, "max_concurrency": a.max_concurrency,
                "routed": dict(self.routed), "affinity_hits": self.routed.get("affinity", 0),
                "prefix_tokens_reused": self.prefix_tokens_reused,
                "warm_prompts": len(self.warm), "warmed": self.warmed, "warm_pending": self.warm_pending}
