"""Settings: every limit and default a user may change, named once, with the reason beside it.

One frozen dataclass. `proxy.cli` fills it from flags > environment (`MLX_PROXY_*`) > a TOML
config file > these defaults. Constants nobody tunes (a protocol's own bounds, poll
intervals, the structure limits of a JSON body) are named once too, with their reasons, in
the module that uses them; the few several modules share are here, above the dataclass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1024 * 1024

# Port anyclaude configurations already use (`baseUrl: http://localhost:8081/v1`).
DEFAULT_PORT = 8081
# mlx_lm.server's own default port.
DEFAULT_UPSTREAM = "http://127.0.0.1:8080"
# The stock server keeps a loaded model only for these `model` values (or its --model path);
# anything else makes it unload and try to load that name.
UPSTREAM_DEFAULT_MODEL = "default_model"

# Seconds a client is told to wait (Retry-After) when the proxy cannot serve it now but will
# soon: the queue is full, the upstream says it is busy, it is starting or restarting (the
# launcher replaces this with its own estimate). Short: Claude Code's own retries back off.
RETRY_AFTER = 5

# Claude Code's billing line: its `cch=` nonce changes on every request and defeats both our
# cache and mlx_lm.server's KV prefix cache.
BILLING_HEADER_RULE = r"(?m)^x-anthropic-billing-header:[^\n]*\n?"


@dataclass(frozen=True)
class Settings:
    # --- where ----------------------------------------------------------------------------
    # The OpenAI-compatible server(s) behind the proxy (mlx-launch puts its child first).
    # Several (repeat the flag) are one pool behind one endpoint: each conversation goes back
    # to the server whose KV cache holds its prefix (proxy/pool/routing.py). The first is the
    # pool's model: a server listing other models gets nothing.
    upstream: tuple[str, ...] = (DEFAULT_UPSTREAM,)
    host: str = "127.0.0.1"  # loopback by default: the proxy holds prompts and a shared cache
    # anyclaude configurations already point at 8081.
    port: int = DEFAULT_PORT

    # --- request limits ---------------------------------------------------------------------
    # Claude Code sends 100 KB-1 MB bodies (system prompt + tools + history); aiohttp's 1 MiB
    # default rejects long sessions. 64 MiB leaves room for pasted files without inviting abuse.
    max_body_bytes: int = 64 * MiB
    # (aiohttp's own header limits, 8190 bytes a line and 128 fields, match nginx's and stay.)

    # A client that sends headers and then no body would hold its handler for ever; nginx's
    # client_body_timeout is 60 s between reads, we bound the whole body the same way.
    client_body_timeout: float = 60.0
    # ...and one that never finishes its headers would hold its socket for ever (nginx:
    # client_header_timeout, 60 s; 20 s is ample for a local client).
    client_header_timeout: float = 20.0
    # Client connections at once; 0 = the open-file limit minus 64, so an accept never fails
    # for want of a descriptor (then nothing, not even liveness, is answered). At the cap the
    # connection that has waited longest for its headers is closed.
    max_connections: int = 0

    # --- upstream behaviour -----------------------------------------------------------------
    # Generations sent to the upstream at once; 0 = what the upstream takes, from what it says
    # it is (proxy/upstream/profile.py: 4 for mlx_lm.server, which batches and resets
    # connections beyond its backlog of 5; llama.cpp's own slot count; 1 for
    # llama-cpp-python, whose server cuts a running stream when another arrives; 1 when unknown).
    max_concurrency: int = 0
    # Requests waiting for an upstream slot; beyond this the proxy answers 503 + Retry-After.
    max_queue: int = 64
    # Background requests wait behind interactive ones: Claude Code's `Warmup` probe and its
    # topic/title generation (regexes on the first and last message's text), and any request
    # asking for at most this many tokens.
    background_patterns: tuple[str, ...] = (r"^\s*Warmup\s*$", r"(?i)new conversation topic",
                                            r"(?i)\bwrite a [0-9]+-[0-9]+ word title\b")
    background_max_tokens: int = 64  # (see background_patterns)
    # Connecting to a local server either works at once or not at all.
    connect_timeout: float = 10.0
    # A 30k-token prompt on a laptop can take minutes of prefill; Claude Code itself gives up
    # after 5 minutes, so the proxy waits a little longer than the client.
    first_token_timeout: float = 600.0
    # Once tokens flow, a silence this long means the server is stuck.
    idle_timeout: float = 120.0
    # Long agent turns (8k tokens at ~10 tok/s) finish well inside 30 minutes.
    total_timeout: float = 1800.0
    # SSE comment interval while waiting for the first token: below common 30-60 s idle cut-offs.
    keepalive_interval: float = 5.0

    # --- a pool of upstreams ------------------------------------------------------------------
    # affinity: a conversation goes back to the upstream that served it (its prefix is in that
    # server's KV cache); round_robin: in turn (for comparison, or servers without a prefix cache).
    routing: str = "affinity"
    # An upstream with more requests than this waiting for it is passed over for the least
    # loaded one: a prefix-cache hit saves one prefill, a queue of several costs their whole
    # generations.
    affinity_max_queued: int = 2
    # Seconds between checks of each pool member (GET /v1/models); a dead member is taken out
    # at its first failed request or check, and put back at its first good check.
    pool_health_interval: float = 2.0
    # When an upstream comes back from a restart (a crash, the watchdog, another Mac's reboot),
    # this many of the conversations it served last are prefilled again (1-token background
    # requests), so their next turns find their prefixes in its KV cache; 0: none.
    warmup_prompts: int = 4
    # Bound on the prompts kept per upstream for that (the newest turn of each conversation).
    warmup_max_bytes: int = 32 * MiB

    # --- normalization ----------------------------------------------------------------------
    # The model string sent upstream. For mlx_lm.server `default_model` keeps the loaded model.
    upstream_model: str = UPSTREAM_DEFAULT_MODEL
    # The name the served model is shown as (/v1/models, responses); the launcher sets it to
    # its --model value. Also the model identity in cache keys.
    served_model: str = "default_model"
    # Fingerprint of the served model's config (the launcher computes it when it knows the path).
    model_fingerprint: str = ""
    # Local model folder (or cached hub name) whose tokenizer Anthropic count_tokens uses; the
    # launcher sets it to the model it serves. Empty: count_tokens estimates.
    tokenizer_path: str = ""
    # auto: when the served chat template drops `tools` (the proxy renders it once to see; it
    # needs the tokenizer, which the launcher always has), the proxy writes the tools into the
    # prompt in llama.cpp's generic JSON format and reads calls back in it. Without this the
    # model never sees the tools and the client gets no sign. off: leave the prompt alone.
    tool_prompt: str = "auto"
    # Extra names clients may use for the served model (listed in /v1/models).
    model_aliases: tuple[str, ...] = ()
    # mlx_lm.server's default of 512 truncates tool calls (an Edit with a code block is 1-3k
    # tokens); 8192 fits a long answer or a large file Write without running for ever.
    default_max_tokens: int = 8192
    # Regexes removed from system text before forwarding and hashing.
    volatile_rules: tuple[str, ...] = (BILLING_HEADER_RULE,)
    # The upstream's sampling defaults where they differ from mlx_lm.server's own, as name=value
    # (temperature=0.7 when it runs with --temp 0.7). The proxy sends every sampling parameter
    # explicitly (so omitted and explicit defaults share a cache entry), so a server started
    # with other defaults must have them named here or they are overridden.
    sampling_defaults: tuple[str, ...] = ()

    # --- cache --------------------------------------------------------------------------------
    cache: str = "memory"  # memory | none | redis://... | rediss://...
    # Completions are small (a few KB); 512 MiB holds ~100k of them.
    cache_max_bytes: int = 512 * MiB
    # A day: long enough for a working session's retries and re-runs, short enough that stale
    # answers do not outlive a model change by much.
    cache_ttl: int = 86400
    # Redis ops on the request path must never cost more than a local generation step.
    redis_timeout: float = 0.25
    # Values above this are zlib-compressed before going to Redis (network + memory savings).
    cache_compress_min_bytes: int = 1024
    # With a shared Redis, entries this proxy read or wrote are also kept in-process this long
    # (within this many bytes), so a repeat on the same Mac (a retry) skips the network: a Redis
    # hit costs a round trip, a near hit microseconds. A flush or delete made on another Mac
    # reaches this one within this time.
    cache_near_ttl: int = 10
    cache_near_max_bytes: int = 64 * MiB  # bound of that in-process copy (--cache-near-ttl 0 turns it off)
    # Cross-proxy single-flight: a leader's lease lives this long unless renewed (it is renewed
    # every third of it, from when it is taken until the answer is stored: the leader's
    # heartbeat), so followers learn within this time and a poll that the leading proxy died:
    # they take over, or fail retryably if they had passed part of its answer on.
    cache_lease_ttl: float = 3.0
    # A client that leaves a cacheable generation does not cancel it, up to this many at once,
    # so the client's retry becomes a hit instead of a second long prefill. Background requests
    # (background_patterns) are cancelled anyway: nobody retries a warm-up or a title.
    max_orphan_generations: int = 2

    # On SIGTERM/SIGINT, in-flight requests get this long to finish before connections close.
    shutdown_grace: float = 30.0

    # --- operations ----------------------------------------------------------------------------
    log_format: str = "text"  # text | json
    log_bodies: bool = False  # never log prompt text unless asked
    # Keys clients must present (`KEY`, or `KEY:namespace` for a tenant with its own cache
    # namespace); required to listen beyond loopback.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Listen beyond loopback without keys, on purpose.
    insecure_no_auth: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.upstream, str):  # one URL (the launcher's child, a test's upstream)
            object.__setattr__(self, "upstream", (self.upstream,))

    @property
    def primary_upstream(self) -> str:
        """The first upstream: the pool's model, and where requests go that are not generations."""
        return self.upstream[0]
