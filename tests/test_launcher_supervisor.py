"""Supervisor paths the real server cannot be made to take on demand, with a stand-in child:
a generation thread that dies after the model loaded, the give-up rule and the backoff reset.

The stand-in is started exactly as the real one (`PYTHON -m launcher.mlx_lm_server ARGS`), with PYTHON
a script that runs a small HTTP server speaking just enough of mlx_lm.server's protocol.
"""
from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import pytest

from launcher.cli import free_port
from launcher.config import LaunchConfig
from launcher.supervisor import LaunchError, Supervisor
from proxy.upstream.status import UpstreamStatus

# Answers the readiness probe, then prints the line mlx_lm.server prints when its generation
# thread dies, and keeps serving HTTP (as the real server does).
FAKE_SERVER = '''
import http.server, sys, threading, time
port = int(sys.argv[sys.argv.index("--port") + 1])

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")
        threading.Timer(0.1, lambda: print(
            "ERROR - mlx_lm.server generation thread died: boom", flush=True)).start()
    def log_message(self, *args):
        pass

print(f"INFO - Starting httpd at 127.0.0.1 on port {port}...", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
'''


@pytest.fixture
def fake_python(tmp_path: Path) -> str:
    server = tmp_path / "fake_server.py"
    server.write_text(FAKE_SERVER)
    script = tmp_path / "python"
    # `python -m launcher.mlx_lm_server ARGS` -> the fake server with ARGS
    script.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} {server} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def config(**overrides) -> LaunchConfig:
    base = dict(model="fake", model_path="fake", server_port=free_port(), ready_timeout=20.0,
                term_timeout=5.0, backoff_initial=0.01, backoff_max=0.02, backoff_reset_after=3600.0,
                max_restarts=2)
    return LaunchConfig(**{**base, **overrides})


async def test_dead_generation_thread_after_ready_means_restart_then_give_up(fake_python):
    status = UpstreamStatus(state="starting")
    supervisor = Supervisor(config(), status, python=fake_python)
    try:
        assert await supervisor.start()
        gave_up = r"keeps failing \(generation_failed\); gave up after 2 restarts in a row"
        with pytest.raises(LaunchError, match=gave_up):
            await asyncio.wait_for(supervisor.supervise(), 30)
        assert status.state == "failed" and status.managed
        assert status.restart_causes == {"generation_failed": 2}
    finally:
        await supervisor.stop()
    assert supervisor.pid is None and status.state == "stopped"


async def test_a_healthy_period_resets_the_failure_count(fake_python):
    status = UpstreamStatus(state="starting")
    # every run counts as healthy: the streak never reaches max_restarts
    supervisor = Supervisor(config(backoff_reset_after=0.0, max_restarts=1), status, python=fake_python)
    try:
        assert await supervisor.start()
        supervising = asyncio.ensure_future(supervisor.supervise())
        while status.restarts < 3:
            assert not supervising.done(), supervising
            await asyncio.sleep(0.05)
        await supervisor.stop()
        await asyncio.wait_for(supervising, 10)  # returns quietly once stopped
    finally:
        await supervisor.stop()
    assert status.restart_causes["generation_failed"] >= 3
