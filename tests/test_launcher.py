"""The real `mlx-launch` CLI (`python -m launcher`) as a subprocess on the tiny-random model:
start, serve through the proxy, stop, restart after a crash, fatal start-up errors, and no
orphaned mlx_lm.server in any case."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from launcher.cli import free_port

READY = r"ready: http://"
CHILD_STARTED = r"started mlx_lm.server pid=(\d+)"
START_TIMEOUT = 90.0
EXIT_TIMEOUT = 30.0
GONE_TIMEOUT = 5.0


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_gone(pid: int, timeout: float = GONE_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


class Launch:
    """`python -m launcher ARGS` with its log lines collected as they arrive."""

    def __init__(self, *args: str, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "launcher", "--port", str(self.port), *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT, start: int = 0) -> re.Match:
        """First log line (from index `start`) matching `pattern`; fails on timeout or exit."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        seen = start
        with self._new_line:
            while True:
                for line in self.lines[seen:]:
                    if m := regex.search(line):
                        return m
                seen = len(self.lines)
                if self.proc.poll() is not None and seen == len(self.lines):
                    pytest.fail(f"launcher exited ({self.proc.returncode}) before {pattern!r}:\n{self.output}")
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no {pattern!r} within {timeout} s:\n{self.output}")
                self._new_line.wait(min(left, 0.5))

    def child_pids(self) -> list[int]:
        return [int(m) for m in re.findall(CHILD_STARTED, self.output)]

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(EXIT_TIMEOUT)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.child_pids():
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def launch(tiny_model_path):  # tiny_model_path: the model is built before any timing starts
    started: list[Launch] = []

    def start(*args: str, port: int | None = None, env: dict[str, str] | None = None) -> Launch:
        run = Launch(*args, port=port, env=env)
        started.append(run)
        return run

    yield start
    for run in started:
        run.close()


def chat(port: int, max_tokens: int = 3, timeout: float = 60.0, content: str = "hi") -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of one chat completion through the proxy."""
    body = json.dumps({"model": "tiny-random", "messages": [{"role": "user", "content": content}],
                       "max_tokens": max_tokens}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def get_json(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def test_serves_through_the_proxy_and_stops_cleanly_on_sigterm(launch):
    run = launch("--model", "tiny-random")
    run.wait_for(READY)
    [child] = run.child_pids()
    status, _, body = chat(run.port)
    assert status == 200
    assert body["model"] == "tiny-random"
    assert body["usage"]["completion_tokens"] == 3
    # a user finds the server by its name: `ps -e` shows mlx_lm.server, `pgrep -f mlx_lm` finds it
    assert Path(f"/proc/{child}/comm").read_text().strip() == "mlx_lm.server"
    assert "mlx_lm" in Path(f"/proc/{child}/cmdline").read_text()
    assert run.signal(signal.SIGTERM) == 0
    assert wait_gone(child)
    assert "exited with status -15" in run.output


def test_the_server_child_never_sees_the_proxys_secrets(launch):
    key, password = "sk-" + "k3y" * 12, "r3dis-pa55word"
    run = launch("--model", "tiny-random", env={"MLX_PROXY_API_KEYS": key,
                                                 "MLX_PROXY_CACHE": f"redis://:{password}@127.0.0.1:{free_port()}/0"})
    run.wait_for(READY)
    [child] = run.child_pids()
    environ = Path(f"/proc/{child}/environ").read_bytes()
    assert key.encode() not in environ and password.encode() not in environ and b"MLX_PROXY_" not in environ
    assert key.encode() in Path(f"/proc/{run.proc.pid}/environ").read_bytes()  # the proxy has them
    assert key not in run.output and password not in run.output


def test_requests_during_the_first_load_get_503_with_retry_after(launch):
    run = launch("--model", "tiny-random")
    child = int(run.wait_for(CHILD_STARTED).group(1))
    # Held still, so the model cannot finish loading before the request lands (tiny-random loads
    # in well under a second on a fast machine): the request meets a loading server every time.
    os.kill(child, signal.SIGSTOP)
    try:
        status, headers, body = chat(run.port)
    finally:
        os.kill(child, signal.SIGCONT)
    assert status == 503, body
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["message"]
    run.wait_for(READY)
    assert chat(run.port)[0] == 200


def test_sigint_while_the_model_loads_stops_without_orphans(launch):
    run = launch("--model", "tiny-random")
    run.wait_for(CHILD_STARTED)
    [child] = run.child_pids()
    assert run.signal(signal.SIGINT) == 0
    assert wait_gone(child)


def test_in_flight_request_finishes_before_the_server_stops(launch):
    run = launch("--model", "tiny-random", "--grace", "60")
    run.wait_for(READY)
    started = time.monotonic()
    status, _, _ = chat(run.port, max_tokens=1)
    one_token = time.monotonic() - started
    result: list = []
    # Long enough to be in flight when SIGTERM lands (tiny-random rarely stops early).
    request = threading.Thread(target=lambda: result.append(chat(run.port, max_tokens=3000)))
    request.start()
    time.sleep(max(0.5, 5 * one_token))
    assert run.signal(signal.SIGTERM) == 0
    request.join(EXIT_TIMEOUT)
    status, _, body = result[0]
    assert status == 200, body
    assert body["usage"]["completion_tokens"] > 0
    assert re.search(r"waiting up to 60 s for 1 in-flight", run.output)


def test_killed_child_is_restarted_and_clients_get_503_meanwhile(launch):
    # A 3 s first backoff leaves a window in which the proxy must answer 503.
    run = launch("--model", "tiny-random", "--backoff-initial", "3", "--cache", "none")
    run.wait_for(READY)
    [first] = run.child_pids()
    mark = len(run.lines)
    os.kill(first, signal.SIGKILL)
    run.wait_for(r"restart 1 in 3 s", timeout=10, start=mark)
    status, headers, body = chat(run.port)
    assert status == 503
    assert int(headers["Retry-After"]) >= 3
    assert body["error"]["message"] and body["error"]["type"]
    run.wait_for(r"mlx_lm.server ready in", start=mark)
    second = run.child_pids()[-1]
    assert second != first and not process_gone(second)
    assert chat(run.port)[0] == 200
    upstream = get_json(run.port, "/health")["upstream"]
    assert upstream["state"] == "ready" and upstream["restarts"] == 1
    assert upstream["restart_causes"] == {"exited": 1}
    assert run.signal(signal.SIGTERM) == 0
    assert wait_gone(second)


def test_taken_proxy_port_fails_before_starting_the_server(launch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = launch("--model", "tiny-random", port=taken.getsockname()[1])
        assert run.proc.wait(EXIT_TIMEOUT) == 1
    assert "cannot listen on 127.0.0.1" in run.output
    assert run.child_pids() == []


def test_taken_server_port_is_a_clear_error_and_leaves_no_process(launch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = launch("--model", "tiny-random", "--server-port", str(port))
        assert run.proc.wait(EXIT_TIMEOUT) == 1
    assert f"port {port} is already in use by another program" in run.output
    assert run.child_pids() == []  # nothing was started on a port it could not have


def test_a_foreign_server_on_the_server_port_is_never_adopted(launch, scripted):
    """Something that answers like mlx_lm.server already listens there (another program, a
    second launcher): the launcher refuses rather than serve and cache its answers as its own."""
    run = launch("--model", "tiny-random", "--server-port", str(scripted.port))
    assert run.proc.wait(EXIT_TIMEOUT) == 1
    assert "already in use by another program" in run.output and "mlx_lm.server ready in" not in run.output
    assert scripted.received == [] and run.child_pids() == []


def test_model_that_fails_to_load_is_a_clear_error(launch, tmp_path):
    (tmp_path / "config.json").write_text("{}")  # a folder that is no model
    run = launch("--model", str(tmp_path))
    assert run.proc.wait(EXIT_TIMEOUT) == 1
    assert "cannot serve: the model failed to load" in run.output
    [child] = run.child_pids()
    assert wait_gone(child)


def test_child_exits_when_the_launcher_is_killed(launch):
    run = launch("--model", "tiny-random")
    run.wait_for(READY)
    [child] = run.child_pids()
    run.proc.kill()
    run.proc.wait()
    assert wait_gone(child), "mlx_lm.server outlived a SIGKILLed launcher"


def test_orphan_guard_ends_the_server_when_its_pipe_closes(tiny_model_path):
    """The guard that works on macOS too: EOF on stdin (the launcher's pipe) ends the child."""
    from launcher.mlx_lm_server import ORPHANED_EXIT_CODE

    child = subprocess.Popen([sys.executable, "-m", "launcher.mlx_lm_server", "--model", tiny_model_path,
                              "--port", str(free_port())], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, HF_HUB_OFFLINE="1"))
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if "Starting httpd" in line:
                break
        child.stdin.close()  # what the kernel does when the launcher dies
        assert child.wait(GONE_TIMEOUT) == ORPHANED_EXIT_CODE
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_second_signal_stops_without_waiting_for_in_flight_requests(launch):
    run = launch("--model", "tiny-random", "--grace", "120")
    run.wait_for(READY)
    result: list = []
    # tiny-random generates until max_tokens: far longer than this test waits
    threading.Thread(target=lambda: result.append(_chat_or_error(run.port, 1_000_000)), daemon=True).start()
    run.wait_for(r"Prompt processing progress: 1/1|POST /v1/chat/completions HTTP", start=len(run.lines))
    [child] = run.child_pids()
    started = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    run.wait_for(r"waiting up to 120 s for 1 in-flight")
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(EXIT_TIMEOUT) == 0
    assert time.monotonic() - started < 20
    assert "second signal: stopping mlx_lm.server under 1 in-flight request(s)" in run.output
    assert wait_gone(child)


def _chat_or_error(port: int, max_tokens: int):
    try:
        return chat(port, max_tokens=max_tokens)
    except (OSError, ValueError) as e:  # the connection is cut by the forced stop
        return e


def test_ready_timeout_is_a_clear_error(launch):
    run = launch("--model", "tiny-random", "--ready-timeout", "0.2")
    assert run.proc.wait(EXIT_TIMEOUT) == 1
    assert re.search(r"not ready after 0.2 s \(still waiting for .+\)", run.output)
    [child] = run.child_pids()
    assert wait_gone(child)


def test_gives_up_after_max_restarts_in_a_row(launch):
    run = launch("--model", "tiny-random", "--max-restarts", "1", "--backoff-initial", "1",
                 "--backoff-max", "1")
    run.wait_for(READY)
    [first] = run.child_pids()
    server_port = int(re.search(r"started mlx_lm.server pid=\d+ port=(\d+)", run.output).group(1))
    mark = len(run.lines)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        os.kill(first, signal.SIGKILL)
        run.wait_for(r"restart 1 in 1 s", timeout=10, start=mark)
        squatter.bind(("127.0.0.1", server_port))  # the restarted server cannot bind
        squatter.listen()
        assert run.proc.wait(EXIT_TIMEOUT) == 1
    assert f"restart failed: port {server_port} is already in use by another program" in run.output
    assert "gave up after 1 restarts" in run.output
    assert all(wait_gone(pid) for pid in run.child_pids())


def test_grace_period_bounds_the_wait_for_in_flight_requests(launch):
    run = launch("--model", "tiny-random", "--grace", "1")
    run.wait_for(READY)
    threading.Thread(target=lambda: _chat_or_error(run.port, 1_000_000), daemon=True).start()
    run.wait_for(r"Prompt processing progress: 1/1|POST /v1/chat/completions HTTP", start=len(run.lines))
    [child] = run.child_pids()
    started = time.monotonic()
    assert run.signal(signal.SIGTERM) == 0
    assert time.monotonic() - started < 15
    assert "grace period over: stopping mlx_lm.server under 1 in-flight request(s)" in run.output
    assert wait_gone(child)


def test_unsafe_proxy_configuration_is_refused_before_anything_starts(launch):
    run = launch("--model", "tiny-random", "--host", "0.0.0.0")
    assert run.proc.wait(EXIT_TIMEOUT) == 2
    assert "refusing to listen on '0.0.0.0' without an API key" in run.output
    assert run.child_pids() == []


def test_watchdog_restarts_a_wedged_server_and_fails_its_requests_retryably(launch):
    run = launch("--model", "tiny-random", "--watchdog-timeout", "1", "--cache", "none", "--max-concurrency", "1")
    run.wait_for(READY)
    [first] = run.child_pids()
    in_flight: list = []
    queued: list = []
    request = threading.Thread(target=lambda: in_flight.append(_chat_or_error(run.port, 1_000_000)))
    request.start()
    run.wait_for(r"Prompt processing progress|POST /v1/chat/completions HTTP", start=len(run.lines))
    waiting = threading.Thread(target=lambda: queued.append(_chat_or_error(run.port, 3)))
    waiting.start()  # queued behind the only upstream slot
    mark = len(run.lines)
    os.kill(first, signal.SIGSTOP)  # alive, port open, no progress: a wedge
    stopped_at = time.monotonic()
    run.wait_for(r"stopped serving \(wedged", timeout=15, start=mark)
    # found within the watchdog timeout plus one check interval (and slack for a loaded machine)
    assert time.monotonic() - stopped_at < 1 + 0.25 + 2.0
    request.join(EXIT_TIMEOUT)
    status, headers, body = in_flight[0]
    assert status == 503 and int(headers["Retry-After"]) >= 1, body
    run.wait_for(r"mlx_lm.server ready in", start=mark)
    waiting.join(EXIT_TIMEOUT)
    status, _, body = queued[0]
    assert status == 200 and body["choices"][0]["finish_reason"] in ("stop", "length")  # served after the restart
    assert wait_gone(first)
    causes = get_json(run.port, "/health")["upstream"]["restart_causes"]
    assert [c.startswith("wedged") for c in causes] == [True]
    assert run.signal(signal.SIGTERM) == 0
