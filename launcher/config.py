"""Launcher-only defaults, each named once with its reason.

The proxy's own settings live in `proxy.config.Settings`; these govern only the child
mlx_lm.server: how long to wait for it, how to restart it, how to stop it.
"""
from __future__ import annotations

from dataclasses import dataclass

# The child listens on loopback only: the proxy is its one client and holds the auth.
CHILD_HOST = "127.0.0.1"
# 0 = pick a free port at start-up. mlx_lm.server's own default (8080) is often taken (other
# servers, a second launcher on the same machine); the port is internal, nobody types it.
DEFAULT_SERVER_PORT = 0
# After SIGTERM the child gets this long before SIGKILL. mlx_lm.server's handler only closes
# the listener and joins the generation thread, which ends within one decode step.
CHILD_TERM_TIMEOUT = 10.0
# A 70B model from a cold disk takes minutes to load (Metal) — far longer on CPU; on a first
# run a hub model may also be downloading. Ten minutes, then give up with a clear message.
DEFAULT_READY_TIMEOUT = 600.0
# Between readiness probes: the 1-token probe costs one forward pass, cheap once loaded.
READY_POLL_INTERVAL = 0.25
# Timeout of one readiness probe (a 1-token completion). It may wait behind the model load.
READY_PROBE_TIMEOUT = 30.0
# How often the "still loading" progress line is printed.
PROGRESS_INTERVAL = 5.0
# Restart backoff: 1 s doubling to 30 s. Quick enough to recover from a one-off crash,
# slow enough not to spin on a model that dies at every start.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 30.0
# A child that served this long counts as healthy again: the backoff restarts at its minimum.
BACKOFF_RESET_AFTER = 60.0
# Consecutive failed starts before the launcher gives up (0 = never). Ten covers ~4 minutes of
# backoff: enough for a transient problem, and a broken model still ends with an error.
DEFAULT_MAX_RESTARTS = 10
# A generation producing tokens that goes silent this long (no token, no keep-alive), or a child
# stopped this long, means the server is wedged with /health still green (mlx-lm#1505, #1909,
# #1493): in-flight requests fail retryably and the child is restarted. A generation still in
# prefill gets the proxy's first-token budget instead (--first-token-timeout): mlx_lm.server
# reports prefill progress once per 2048-token chunk, minutes apart on a CPU or for a large
# model, so slow is never taken for stuck. 0 disables the watchdog.
DEFAULT_WATCHDOG_TIMEOUT = 180.0
# Lines of child output kept to explain a failure in the launcher's error message.
FAILURE_TAIL_LINES = 20
# Environment variable pointing at the folder of generated models (tiny-random, test fixtures);
# default $XDG_CACHE_HOME/mlx-proxy or ~/.cache/mlx-proxy.
MODEL_CACHE_ENV = "MLX_PROXY_MODEL_CACHE"


@dataclass(frozen=True)
class LaunchConfig:
    """Everything the supervisor needs to run one child; built from the CLI flags."""

    model: str  # the --model value as given (tiny-random, a path or a hub name)
    model_path: str  # what mlx_lm.server gets as --model
    server_port: int
    extra_args: tuple[str, ...] = ()
    offline: bool = False  # set HF_HUB_OFFLINE=1 for the child (local model paths)
    term_timeout: float = CHILD_TERM_TIMEOUT
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    backoff_initial: float = BACKOFF_INITIAL
    backoff_max: float = BACKOFF_MAX
    backoff_reset_after: float = BACKOFF_RESET_AFTER
    max_restarts: int = DEFAULT_MAX_RESTARTS
    watchdog_timeout: float = DEFAULT_WATCHDOG_TIMEOUT
