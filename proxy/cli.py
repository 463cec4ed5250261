"""`mlx-proxy`: flags > environment (`MLX_PROXY_*`) > TOML config file > defaults -> Settings.

Every Settings field is a flag (`--field-name`), an environment variable
(`MLX_PROXY_FIELD_NAME`) and a config-file key (`field_name` or `field-name`), so a new setting
needs no code here. Bad values stop start-up with a one-line message naming the setting.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .config import Settings
from .server.auth import AuthConfigError, check_exposure
from .settings_help import field_help

ENV_PREFIX = "MLX_PROXY_"
_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
# Settings that hold secrets: masked by --print-config.
SECRET_FIELDS = frozenset({"api_keys"})
# Fields that take a list: repeat the flag, or comma-separate in env.
_LIST_FIELDS = {name for name, f in _FIELDS.items() if isinstance(f.default, tuple) or name == "api_keys"}
# Extra flag spellings: one key at a time reads better as `--api-key KEY --api-key KEY2`.
_ALIASES = {"api_keys": ("--api-key",)}


class ConfigError(ValueError):
    pass


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_proxy_arguments(parser: argparse.ArgumentParser, exclude: frozenset[str] = frozenset()) -> None:
    """Add one flag per Settings field (the launcher reuses this for its proxy options)."""
    group = parser.add_argument_group("proxy options")
    reasons = field_help()
    for name, f in _FIELDS.items():
        if name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        env = f"env {ENV_PREFIX}{name.upper()}"
        why = reasons.get(name, "")
        if isinstance(default, bool):
            group.add_argument(_flag(name), dest=name, action="store_true", default=None,
                               help=f"{why} (default: off; {env})")
        elif name in _LIST_FIELDS:
            group.add_argument(_flag(name), *_ALIASES.get(name, ()), dest=name, action="append", default=None,
                               help=f"{why} (repeatable; {env}, comma-separated)")
        else:
            shown = "***" if name in SECRET_FIELDS else default
            group.add_argument(_flag(name), dest=name, default=None, help=f"{why} (default: {shown}; {env})")
    parser.add_argument("--config", default=os.environ.get(ENV_PREFIX + "CONFIG"),
                        help="TOML file with settings (keys as the flag names)")
    parser.add_argument("--print-config", action="store_true", help="print the effective settings and exit")


def _convert(name: str, value: Any) -> Any:
    f = _FIELDS[name]
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    try:
        if name in _LIST_FIELDS:
            if isinstance(value, str):
                value = [v for v in value.split(",") if v.strip()]
            return tuple(str(v).strip() for v in value)
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid value for {name}: {value!r}") from None


def _validate(s: Settings) -> None:
    if not 0 < s.port < 65536:
        raise ConfigError(f"port out of range: {s.port}")
    for name in ("connect_timeout", "first_token_timeout", "idle_timeout", "total_timeout",
                 "keepalive_interval", "max_body_bytes", "cache_ttl"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be positive, got {getattr(s, name)!r}")
    if s.max_queue < 0:
        raise ConfigError("max_queue must be >= 0")
    if s.max_concurrency < 0:
        raise ConfigError("max_concurrency must be >= 0 (0: what the upstream takes)")
    if not s.upstream:
        raise ConfigError("upstream must name at least one server")
    for url in s.upstream:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"upstream must be an http(s) URL, got {url!r}")
    if len({url.rstrip('/') for url in s.upstream}) != len(s.upstream):
        raise ConfigError("upstream lists a server twice")
    if s.routing not in ("affinity", "round_robin"):
        raise ConfigError(f"routing must be affinity or round_robin, got {s.routing!r}")
    if s.pool_health_interval <= 0:
        raise ConfigError("pool_health_interval must be positive")
    if s.warmup_prompts < 0 or s.affinity_max_queued < 0:
        raise ConfigError("warmup_prompts and affinity_max_queued must be >= 0")
    if s.tool_prompt not in ("auto", "off"):
        raise ConfigError(f"tool_prompt must be auto or off, got {s.tool_prompt!r}")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be text or json, got {s.log_format!r}")
    cache = s.cache
    if cache not in ("memory", "none") and not cache.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"cache must be memory, none or a redis:// URL, got {cache!r}")
    try:
        check_exposure(s.host, s.api_keys, s.insecure_no_auth)
    except AuthConfigError as e:
        raise ConfigError(str(e)) from None


def build_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
                   **overrides: Any) -> Settings:
    """Merge the layers; `overrides` (from the launcher) sit between flags and environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = getattr(args, "config", None)
    if path:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from None
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"unknown setting {key!r} in {path}")
            values[name] = _convert(name, value)
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _convert(name, raw)
    for name, value in overrides.items():
        values[name] = _convert(name, value)
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = _convert(name, value)
    settings = Settings(**values)
    _validate(settings)
    return settings


def printable(s: Settings) -> dict[str, Any]:
    out = dataclasses.asdict(s)
    for name in SECRET_FIELDS:
        if out.get(name):
            out[name] = ["***"] * len(out[name])
    out["cache"] = masked_url(s.cache)
    return out


# Query parameters of a Redis URL that hold a secret (redis-py reads `?password=`).
_SECRET_QUERY = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def masked_url(url: str) -> str:
    """`url` with its password masked, in the user-info part and in the query."""
    if "://" not in url:
        return url  # "memory", "none"
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:  # redis://user:password@host -> redis://user:***@host
        creds, _, host = netloc.rpartition("@")
        netloc = f"{creds.split(':', 1)[0]}:***@{host}"
    query = "&".join(f"{name}=***" if _SECRET_QUERY.search(name) else f"{name}={value}" if sep else name
                     for name, sep, value in (field.partition("=") for field in parts.query.split("&") if field))
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlx-proxy", description="Reverse proxy for mlx_lm.server and "
                                     "other OpenAI-compatible servers: cache, normalization, timeouts, tool calls.")
    add_proxy_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = build_settings(args)
    except ConfigError as e:
        print(f"mlx-proxy: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        import orjson
        print(orjson.dumps(printable(settings), option=orjson.OPT_INDENT_2).decode())
        return 0
    from .server.app import run
    return run(settings)


if __name__ == "__main__":
    sys.exit(main())
