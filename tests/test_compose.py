"""docker-compose.yml without a Docker engine: its structure, and its Redis command and health
check run for real against the installed redis-server; the proxy service's settings go through
the proxy's own configuration code."""
from __future__ import annotations

import argparse
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis
import yaml

from launcher.cli import free_port
from proxy.cli import add_proxy_arguments, build_settings

ROOT = Path(__file__).resolve().parents[1]
ENV = {"REDIS_PASSWORD": "pw-for-tests-0123456789", "MLX_PROXY_API_KEYS": "k-0123456789abcdef"}
_VAR = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's variable syntax: ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ for a literal $."""
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, kind, arg = m.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if kind == "-" else ""
    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_redis_service_shape(compose):
    redis_svc = compose["services"]["redis"]
    assert redis_svc["image"].startswith("redis:7")
    command = redis_svc["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert command[command.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert "--maxmemory" in command and command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis_svc["volumes"]) and "redis-data" in compose["volumes"]
    assert redis_svc["healthcheck"]["test"][0] == "CMD-SHELL" and "ping" in redis_svc["healthcheck"]["test"][1]
    assert redis_svc["restart"] == "unless-stopped"


def test_a_missing_password_stops_compose():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    with pytest.raises(KeyError, match="REDIS_PASSWORD"):
        interpolate(compose["services"]["redis"]["command"], {})


def test_proxy_service_is_optional_and_points_at_the_host(compose):
    proxy = compose["services"]["proxy"]
    assert proxy["profiles"] == ["proxy"]
    assert proxy["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "host.docker.internal:host-gateway" in proxy["extra_hosts"]
    assert proxy["ports"] == ["127.0.0.1:${MLX_PROXY_PORT:-8081}:8081"]
    assert "/health/live" in " ".join(proxy["healthcheck"]["test"])
    assert (ROOT / proxy["build"]["dockerfile"]).is_file()


def test_proxy_service_environment_is_a_valid_configuration(compose):
    env = {k: str(v) for k, v in interpolate(compose["services"]["proxy"]["environment"], ENV).items()}
    parser = argparse.ArgumentParser()
    add_proxy_arguments(parser)
    settings = build_settings(parser.parse_args([]), environ=env)
    assert settings.host == "0.0.0.0" and settings.api_keys == (ENV["MLX_PROXY_API_KEYS"],)
    assert settings.upstream == ("http://host.docker.internal:8080",)
    assert settings.cache == f"redis://:{ENV['REDIS_PASSWORD']}@redis:6379/0"
    # without keys the container's proxy refuses to start (it listens on all interfaces)
    with pytest.raises(ValueError, match="refusing to listen"):
        build_settings(parser.parse_args([]), environ={**env, "MLX_PROXY_API_KEYS": ""})


def test_redis_command_and_health_check_work_with_a_real_redis_server(compose, tmp_path):
    svc = compose["services"]["redis"]
    port = free_port()
    command = interpolate(svc["command"], ENV) + ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password=ENV["REDIS_PASSWORD"])
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
        assert int(client.config_get("maxmemory")["maxmemory"]) == 2 * 1024 ** 3
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        health = interpolate(svc["healthcheck"]["test"][1], ENV).replace("redis-cli", f"redis-cli -p {port}")
        env = {"PATH": "/usr/bin:/bin", **interpolate(svc["environment"], ENV)}
        assert subprocess.run(["sh", "-c", health], env=env).returncode == 0
        assert subprocess.run(["sh", "-c", health], env={**env, "REDIS_PASSWORD": "wrong"}).returncode != 0
    finally:
        proc.terminate()
        proc.wait(10)
