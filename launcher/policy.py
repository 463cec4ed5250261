"""Pure decisions of the supervisor: no processes, sockets or clocks here.

What mlx_lm.server's output means, how long to wait before a restart, the child's command
line and environment, and what a client should be told to wait. Tested directly.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from proxy.cli import ENV_PREFIX


class LineKind(Enum):
    OTHER = "other"
    LISTENING = "listening"  # the HTTP listener is up; the model may still be loading
    DOWNLOADING = "downloading"  # huggingface_hub is fetching the checkpoint
    FATAL = "fatal"  # the server will never serve, though its process may stay alive


@dataclass(frozen=True)
class LineVerdict:
    kind: LineKind
    reason: str = ""  # for FATAL: a one-line explanation for the user


# mlx_lm.server 0.32 keeps running after both of these: a failed bind leaves the (non-daemon)
# generation thread alive, and a failed model load leaves the HTTP server up answering errors.
_FATAL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Address already in use"), "the server port is already in use"),
    (re.compile(r"generation thread died: ?(.*)"), "the model failed to load or generation crashed: {0}"),
    (re.compile(r"^(?:\S+\.)?(?:OutOfMemoryError|MemoryError)\b(.*)"), "out of memory{0}"),
)
_OTHER_PATTERNS: tuple[tuple[re.Pattern[str], LineKind], ...] = (
    (re.compile(r"Starting httpd at "), LineKind.LISTENING),
    (re.compile(r"Fetching \d+ files|Downloading"), LineKind.DOWNLOADING),
)
_REASON_MAX_CHARS = 300


def classify_line(line: str) -> LineVerdict:
    """What one line of mlx_lm.server output tells about its start-up."""
    for pattern, reason in _FATAL_PATTERNS:
        m = pattern.search(line)
        if m:
            detail = m.group(1).strip() if m.groups() else ""
            return LineVerdict(LineKind.FATAL, reason.format(detail).rstrip(": ")[:_REASON_MAX_CHARS])
    for pattern, kind in _OTHER_PATTERNS:
        if pattern.search(line):
            return LineVerdict(kind)
    return LineVerdict(LineKind.OTHER)


def waiting_for(listening: bool, downloading: bool, connected: bool) -> str:
    """The progress line's 'what it is waiting for', from what has been seen so far."""
    if downloading and not connected:
        return "downloading the model"
    if not listening and not connected:
        return "the server process to start"
    return "the model to load (a 1-token completion to succeed)"


def backoff_delay(failures: int, initial: float, maximum: float) -> float:
    """Delay before restart number `failures` (1-based) in a row: initial, doubling, capped."""
    if failures <= 0:
        return 0.0
    return min(maximum, initial * 2 ** min(failures - 1, 62))


def retry_after_seconds(delay: float, last_load_seconds: float | None) -> int:
    """Retry-After for clients while the server restarts: the backoff plus the last load time."""
    return max(1, math.ceil(delay + (last_load_seconds or 0.0)))


def server_args(model_path: str, host: str, port: int, extra: tuple[str, ...] = ()) -> list[str]:
    """mlx_lm.server's own arguments (after `python -m launcher.mlx_lm_server`)."""
    return ["--model", model_path, "--host", host, "--port", str(port), *extra]


def child_env(base: Mapping[str, str], offline: bool) -> dict[str, str]:
    """The child's environment: ours without the proxy's settings (API keys, the Redis URL and
    its password: none is the child's business), unbuffered output (so lines
    relay as they happen) and, for a local model, no hub look-ups at all."""
    env = {name: value for name, value in base.items() if not name.startswith(ENV_PREFIX)}
    env["PYTHONUNBUFFERED"] = "1"
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


# Process states (ps(1) STAT's first letter, /proc/PID/stat's third field) of a process stopped
# by a signal (SIGSTOP, SIGTSTP) or by a tracer: it holds its port and makes no progress.
STOPPED_STATES = frozenset("Tt")


def proc_stat_state(stat: str) -> str:
    """The state letter of a /proc/PID/stat line (the command name may hold spaces and ')')."""
    return stat.rsplit(")", 1)[1].split()[0]


# /proc/net/tcp{,6}: the state column of a listening socket.
TCP_LISTEN = "0A"


def listening_inodes(proc_net_tcp: str, port: int) -> set[str]:
    """Socket inodes listening on `port` in a /proc/net/tcp (or tcp6) table."""
    inodes = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            inodes.add(fields[9])
    return inodes
