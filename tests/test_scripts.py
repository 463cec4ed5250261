"""scripts/test-cache.sh and scripts/test-tools.sh, run as users run them, against the proxy in
front of the scripted upstream: their output and exit codes."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.rig.scripted_upstream import Script

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BENCH = Path(__file__).resolve().parents[1] / "bench"
KEY = "k-0123456789abcdef"
WEATHER_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def run(script: str, url: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPTS / script), url], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def test_cache_script_reports_the_speed_up(scripted, start_proxy):
    scripted.script(Script(text="A cache keeps answers.", first_delay=0.3))
    proxy = start_proxy(scripted.url)
    r = run("test-cache.sh", proxy.url)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "Test 1: First request (UNCACHED - should take longer)" in out
    assert "Test 2: Identical request (CACHED - should be instant)" in out
    assert "X-Cache-Status: MISS" in out and "X-Cache-Status: HIT" in out
    assert "Response: A cache keeps answers." in out
    assert "(same as first)" in out and "✅ Cache working!" in out and "x speedup on cached request" in out
    assert scripted.chat_calls == 1
    # each run is a real miss: a fresh nonce in the prompt
    assert run("test-cache.sh", proxy.url).returncode == 0 and scripted.chat_calls == 2


def test_cache_script_fails_when_nothing_is_cached(scripted, start_proxy):
    proxy = start_proxy(scripted.url, cache="none")
    r = run("test-cache.sh", proxy.url)
    assert r.returncode == 1
    assert "❌ First request was BYPASS, not a MISS" in r.stdout


def test_cache_script_fails_clearly_without_a_proxy():
    r = run("test-cache.sh", "http://127.0.0.1:9")
    assert r.returncode == 1


def test_cache_script_sends_the_api_key(scripted, start_proxy):
    proxy = start_proxy(scripted.url, api_keys=(KEY,))
    assert run("test-cache.sh", proxy.url).returncode == 1
    assert run("test-cache.sh", proxy.url, env={"MLX_PROXY_API_KEY": KEY}).returncode == 0


def test_tools_script_passes_on_tool_calls_in_both_modes(scripted, start_proxy):
    scripted.script(Script(text=WEATHER_CALL))
    proxy = start_proxy(scripted.url)
    r = run("test-tools.sh", proxy.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count('tool call 0: get_weather({"city": "Paris"})') == 2
    assert "Non-stream: PASS" in r.stdout and "Stream:     PASS" in r.stdout
    assert "✅ Tool calling works in both modes" in r.stdout
    sent = scripted.received[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_tools_script_says_when_the_model_answered_in_text(scripted, start_proxy):
    scripted.script(Script(text="It is sunny in Paris."))
    proxy = start_proxy(scripted.url)
    r = run("test-tools.sh", proxy.url)
    assert r.returncode == 1
    assert r.stdout.count("the model answered in text instead of calling get_weather: 'It is sunny in Paris.'") == 2
    assert "Non-stream: FAIL" in r.stdout and "❌ Tool calling failed" in r.stdout


def test_tools_script_rejects_arguments_that_are_not_json(scripted):
    # The proxy never lets such a call through (it stays text), so the script's own check is
    # exercised against a bare server that sends one: the scripted upstream itself.
    bad = [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{city: Paris"}}]
    scripted.script(Script(text="", tool_calls=bad, finish_reason="tool_calls"))
    r = run("test-tools.sh", scripted.url)
    assert r.returncode == 1, r.stdout
    assert r.stdout.count("call 0 (get_weather) arguments are not a JSON object") == 2
    assert "Tool calling failed" in r.stdout


def test_bench_runner_runs_each_benchmark_and_sums_up(tmp_path):
    (tmp_path / "bench_fast.py").write_text("print('| case | ms |')\nprint('| a    | 1  |')\n")
    (tmp_path / "bench_broken.py").write_text("import sys\nprint('partial table')\nsys.exit(3)\n")
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark')\n")
    runner = [sys.executable, str(BENCH / "run.py"), "--dir", str(tmp_path)]
    r = subprocess.run(runner, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "| a    | 1  |" in r.stdout and "partial table" in r.stdout
    summary = r.stdout.split("=== summary")[1]
    assert re.search(r"bench_broken\s+FAILED\(3\)", summary) and re.search(r"bench_fast\s+ok", summary)
    assert "helper" not in r.stdout
    only = subprocess.run([*runner, "--only", "fast"], capture_output=True, text=True, timeout=60)
    assert only.returncode == 0 and "bench_broken" not in only.stdout


def test_soak_runs_the_proxy_process_and_judges_its_memory():
    r = subprocess.run([sys.executable, str(BENCH / "soak.py"), "--minutes", "0.15"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"soak: 0.15 min, \d+ requests .* 0 failed", r.stdout)
    for kind in ("hit/json", "hit/stream", "miss/json", "miss/stream", "disconnect/stream"):
        assert kind in r.stdout
    assert "peak growth" in r.stdout and r.stdout.rstrip().endswith("PASS")
