"""Which server is behind the proxy, and what follows from it (the rules are pure; `discover`
asks the upstream).

Two things the proxy cannot take for granted when the user did not say them:
  * how many generations the server takes at once without failing any (a cap too high is
    worse than none: llama-cpp-python's server cuts a running stream when another request
    arrives, mlx_lm.server resets connections beyond its listen backlog);
  * which model it serves, for cache keys: two proxies on one Redis in front of different
    models must never share entries.
Both come from what the server says about itself: its `Server` header, `/v1/models`
(`owned_by` names the server family), and llama.cpp's `/props` (its slot count).
"""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, replace

import orjson

from ..errors import ProxyError

# `owned_by` in /v1/models -> server family (what each one writes there).
OWNED_BY = {"me": "llama-cpp-python", "llamacpp": "llama.cpp", "vllm": "vllm", "library": "ollama",
            "organization_owner": "lm-studio"}
# Generations each family takes at once, with the reason. llama.cpp says its own (`/props`
# total_slots, its --parallel); the rest:
CONCURRENCY = {
    "mlx_lm": 4,  # batches concurrent generations; 4 keeps the batch busy and its backlog of 5 free
    "llama-cpp-python": 1,  # one model instance; a second request interrupts the running stream
    "vllm": 16,  # continuous batching (its own default is 256 sequences); 16 bounds a laptop's share
    "lm-studio": 1,  # queues requests itself, one generation at a time per loaded model by default
    "ollama": 1,  # OLLAMA_NUM_PARALLEL decides; 1 is its conservative setting and never fails a request
    "llama.cpp": 1,  # when /props does not say
    "unknown": 1,  # the proxy queues; nothing is cut or reset
}
# Families with a lower top_logprobs limit than OpenAI's 20 (mlx_lm.server validates 0..11).
TOP_LOGPROBS_MAX = {"mlx_lm": 11}
OPENAI_TOP_LOGPROBS_MAX = 20
# How long discovery may take before the proxy goes on without it.
DISCOVERY_TIMEOUT = 5.0


@dataclass(frozen=True)
class UpstreamProfile:
    kind: str
    models: tuple[str, ...]  # what /v1/models lists
    concurrency: int
    where: str = ""  # this machine and the upstream's URL, for a server that lists no model

    @property
    def identity(self) -> str:
        """The served model as cache keys name it, when nobody named it: the family and what it
        lists. Two servers that list different models never share entries (the safe side). A
        server that lists nothing (mlx_lm.server's /v1/models fails without a hub cache) is
        told apart by where it runs: it shares entries with nobody else."""
        if not self.models:
            return f"{self.kind}@{self.where}"
        return f"{self.kind}:{','.join(sorted(self.models))}"

    @property
    def top_logprobs_max(self) -> int:
        return TOP_LOGPROBS_MAX.get(self.kind, OPENAI_TOP_LOGPROBS_MAX)

    def to_json(self) -> dict:
        return {"kind": self.kind, "models": list(self.models), "concurrency": self.concurrency}


def identify(server_header: str | None, models: object, props: object = None) -> UpstreamProfile:
    """The profile from what the upstream said (any part may be missing or malformed)."""
    entries = models.get("data") if isinstance(models, dict) else None
    entries = [m for m in entries if isinstance(m, dict)] if isinstance(entries, list) else []
    ids = tuple(str(m["id"]) for m in entries if isinstance(m.get("id"), str))
    owners = {m.get("owned_by") for m in entries}
    kind = next((OWNED_BY[o] for o in owners if o in OWNED_BY), None)
    if kind is None:
        # mlx_lm.server is Python's http.server (and lists models without an owner)
        kind = "mlx_lm" if (server_header or "").startswith("BaseHTTP/") else "unknown"
    concurrency = CONCURRENCY[kind]
    slots = props.get("total_slots") if isinstance(props, dict) else None
    if kind == "llama.cpp" and isinstance(slots, int) and slots > 0:
        concurrency = slots
    return UpstreamProfile(kind, ids, concurrency)


MLX_LAUNCHED = UpstreamProfile("mlx_lm", (), CONCURRENCY["mlx_lm"])  # the launcher's own child


async def discover(upstream) -> UpstreamProfile | None:
    """Ask the upstream what it is; None when it does not answer at all in time."""
    try:
        async with asyncio.timeout(DISCOVERY_TIMEOUT):
            models, server = await _get_json(upstream, "/v1/models")
            if models is None and server is None:
                return None
            props = None
            if identify(server, models).kind == "llama.cpp":
                props, _ = await _get_json(upstream, "/props")
            profile = identify(server, models, props)
            return replace(profile, where=f"{socket.gethostname()}/{upstream.base}")
    except TimeoutError:
        return None


async def _get_json(upstream, path: str) -> tuple[object, str | None]:
    try:
        resp = await upstream.request("GET", path, None, {}, timeout=DISCOVERY_TIMEOUT)
    except ProxyError:
        return None, None
    try:
        server = resp.headers.get("Server", "")  # "" still says: something answered
        if resp.status != 200:
            return None, server
        try:
            return orjson.loads(await resp.read()), server
        except orjson.JSONDecodeError:
            return None, server
    finally:
        resp.release()
