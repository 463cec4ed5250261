"""Configuration: flags > environment > config file > defaults, clear start-up errors, masking."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from proxy.cli import ConfigError, add_proxy_arguments, build_settings, printable
from proxy.config import Settings

KEY = "k-0123456789abcdef"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    return parser.parse_args(list(argv))


def write_config(tmp_path, text: str) -> str:
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    return str(path)


def test_flag_beats_environment_beats_file_beats_default(tmp_path):
    config = write_config(tmp_path, 'port = 9001\nmax-queue = 7\ncache_ttl = 60\nlog_format = "json"\n')
    env = {"MLX_PROXY_PORT": "9002", "MLX_PROXY_MAX_QUEUE": "8"}
    s = build_settings(parse("--config", config, "--port", "9003"), environ=env)
    assert s.port == 9003            # flag
    assert s.max_queue == 8          # environment over file
    assert s.cache_ttl == 60         # file over default
    assert s.log_format == "json"
    assert s.idle_timeout == Settings().idle_timeout  # default


def test_lists_and_booleans_from_each_layer(tmp_path):
    config = write_config(tmp_path, f'api_keys = ["{KEY}"]\nlog_bodies = true\n')
    s = build_settings(parse("--config", config), environ={})
    assert s.api_keys == (KEY,) and s.log_bodies is True
    s = build_settings(parse("--config", config), environ={"MLX_PROXY_API_KEYS": f"{KEY}a,{KEY}b:team",
                                                           "MLX_PROXY_LOG_BODIES": "off"})
    assert s.api_keys == (f"{KEY}a", f"{KEY}b:team") and s.log_bodies is False
    s = build_settings(parse("--api-key", KEY, "--api-key", KEY + "2", "--log-bodies"), environ={})
    assert s.api_keys == (KEY, KEY + "2") and s.log_bodies is True


@pytest.mark.parametrize("argv, env, message", [
    (["--port", "eighty"], {}, "invalid value for port: 'eighty'"),
    (["--port", "70000"], {}, "port out of range"),
    ([], {"MLX_PROXY_IDLE_TIMEOUT": "-1"}, "idle_timeout must be positive"),
    (["--log-format", "xml"], {}, "log_format must be text or json"),
    (["--cache", "memcached://x"], {}, "cache must be memory, none or a redis:// URL"),
    (["--upstream", "localhost:8080"], {}, "upstream must be an http(s) URL"),
    ([], {"MLX_PROXY_LOG_BODIES": "maybe"}, "invalid value for log_bodies"),
    (["--host", "0.0.0.0"], {}, "refusing to listen on '0.0.0.0' without an API key"),
    (["--api-key", "short"], {}, "api keys must be at least 16 characters"),
])
def test_bad_values_name_the_setting(argv, env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_settings(parse(*argv), environ=env)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        build_settings(parse("--config", write_config(tmp_path, "prot = 1\n")), environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_settings(parse("--config", write_config(tmp_path, "port = = 1\n")), environ={})
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_settings(parse("--config", str(tmp_path / "missing.toml")), environ={})


def test_secrets_are_masked():
    s = build_settings(parse("--api-key", KEY, "--api-key", KEY + ":team", "--cache",
                             "rediss://proxy:s3cret-pass@redis.lan:6380/0"), environ={})
    shown = printable(s)
    assert shown["api_keys"] == ["***", "***"]
    assert shown["cache"] == "rediss://proxy:***@redis.lan:6380/0"
    assert KEY not in json.dumps(shown) and "s3cret-pass" not in json.dumps(shown)
    assert KEY not in repr(s)  # Settings' repr (logs, tracebacks) leaves keys out
    password_only = printable(build_settings(parse("--cache", "redis://:pw123456@h:6379"), environ={}))
    assert password_only["cache"] == "redis://:***@h:6379"
    in_query = printable(build_settings(parse("--cache", "rediss://h:6380/0?password=pw123456&ssl_cert_reqs=none"),
                                        environ={}))
    assert in_query["cache"] == "rediss://h:6380/0?password=***&ssl_cert_reqs=none"
    socket = printable(build_settings(parse("--cache", "unix:///run/redis.sock?db=2&password=pw123456"), environ={}))
    assert socket["cache"] == "unix:///run/redis.sock?db=2&password=***"


def run_cli(*argv: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLX_PROXY_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "proxy", *argv], capture_output=True, text=True, env=env,
                          timeout=60)


def test_print_config_shows_the_effective_settings_masked(tmp_path):
    config = write_config(tmp_path, "port = 9001\n")
    r = run_cli("--config", config, "--api-key", KEY, "--print-config",
                env_extra={"MLX_PROXY_CACHE": "redis://:hunter2hunter2@cache:6379"})
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["port"] == 9001 and shown["cache"] == "redis://:***@cache:6379"
    assert shown["api_keys"] == ["***"] and KEY not in r.stdout and "hunter2" not in r.stdout


def test_bad_value_stops_start_up_with_one_clear_line():
    r = run_cli("--port", "eighty")
    assert r.returncode == 2
    assert r.stderr.strip() == "mlx-proxy: invalid value for port: 'eighty'"
    r = run_cli(env_extra={"MLX_PROXY_MAX_QUEUE": "-3"})
    assert r.returncode == 2 and "max_queue must be >= 0" in r.stderr
