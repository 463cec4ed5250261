"""The wedge watchdog against the real mlx_lm.server (through the real `mlx-launch`): a healthy
prefill longer than the watchdog window is left alone, and a stopped server is still found
within the window, in prefill as in decode.

The slow model prefills ~60 tokens/s on 2 CPU cores, so the prompt below is one silent prefill
chunk of several seconds under the default --prefill-step-size, against a 1 s window.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from tests.rig.slow_model import slow_model_path
from tests.test_launcher import EXIT_TIMEOUT, READY, Launch, chat, get_json, wait_gone

WINDOW = 1.0
# ~400 prompt tokens with the tiny tokenizer: several seconds in one prefill chunk.
LONG_PROMPT = "Please read the following notes carefully. " + "def main(argv): return 0 " * 60


@pytest.fixture
def slow_launch():
    path = str(slow_model_path())  # built before any timing starts
    runs: list[Launch] = []

    def start() -> Launch:
        run = Launch("--model", path, "--watchdog-timeout", str(WINDOW), "--cache", "none", "--max-concurrency", "1")
        runs.append(run)
        run.wait_for(READY)
        return run

    yield start
    for run in runs:
        run.close()


def test_a_prefill_chunk_longer_than_the_watchdog_window_completes(slow_launch):
    run = slow_launch()
    started = time.monotonic()
    status, _, body = chat(run.port, max_tokens=2, timeout=120, content=LONG_PROMPT)
    took = time.monotonic() - started
    assert status == 200, body
    assert body["usage"]["prompt_tokens"] > 200
    assert took > 3 * WINDOW  # the prefill really was silent for longer than the window
    assert "wedged" not in run.output
    assert get_json(run.port, "/health")["upstream"]["restart_causes"] == {}


def test_a_server_stopped_during_a_prefill_is_found_within_the_window(slow_launch):
    run = slow_launch()
    [child] = run.child_pids()
    result: list = []
    request = threading.Thread(target=lambda: result.append(chat(run.port, max_tokens=2, timeout=120,
                                                                 content=LONG_PROMPT)))
    mark = len(run.lines)
    request.start()
    # the server answers headers once the request is queued; its first progress line comes
    # only after the first chunk, so seeing neither progress nor a token means: in prefill
    run.wait_for(r'"POST /v1/chat/completions HTTP', start=mark)
    os.kill(child, signal.SIGSTOP)
    stopped_at = time.monotonic()
    run.wait_for(r"stopped serving \(wedged: process stopped", timeout=15, start=mark)
    assert time.monotonic() - stopped_at < WINDOW + 0.25 + 2.0  # window + one tick + slack
    request.join(EXIT_TIMEOUT)
    status, headers, body = result[0]
    assert status == 503 and int(headers["Retry-After"]) >= 1, body
    assert wait_gone(child)
    run.wait_for(r"mlx_lm.server ready in", start=mark)
