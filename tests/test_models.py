"""The offline models (tiny-random, the trained tool fixture), their cache, the fingerprint,
and the real-server fixtures built on them."""
from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from launcher.models import TINY_RANDOM, model_fingerprint, resolve_model
from launcher.tiny_model import build_once, content_key
from tests.rig.tool_model import CASES, FALLBACK, TOOL_RESULT, TOOLS


def post(url: str, body: dict, timeout: float = 120.0) -> dict:
    req = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def message(url: str, messages: list[dict], **extra) -> dict:
    return post(url, {"messages": messages, "max_tokens": 400, **extra})["choices"][0]["message"]


# --- tiny-random and the cache ------------------------------------------------------------
def test_tiny_random_is_cached_and_local(tiny_model_path):
    started = time.monotonic()
    again = resolve_model(TINY_RANDOM)
    assert time.monotonic() - started < 0.5  # built once, then found
    assert again.path == tiny_model_path and again.local
    assert {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"} <= {
        p.name for p in Path(tiny_model_path).iterdir()}
    assert json.loads((Path(tiny_model_path) / "config.json").read_text())["hidden_size"] == 64


def test_hub_names_are_passed_through_and_folders_made_absolute(tmp_path, monkeypatch):
    hub = resolve_model("mlx-community/Qwen2.5-Coder-7B-Instruct-4bit")
    assert hub.path == hub.name and not hub.local
    assert len(hub.fingerprint) == 16
    monkeypatch.chdir(tmp_path.parent)
    local = resolve_model(tmp_path.name)
    assert local.local and local.path == str(tmp_path)


def test_fingerprint_follows_config_and_weights_not_location(tiny_model_path, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_path, copy)  # copytree keeps mtimes
    assert model_fingerprint(copy) == model_fingerprint(tiny_model_path)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "rope_theta": 5000.0}))
    changed_config = model_fingerprint(copy)
    assert changed_config != model_fingerprint(tiny_model_path)
    (copy / "model.safetensors").write_bytes(b"other weights")
    assert model_fingerprint(copy) != changed_config


def test_content_key_changes_with_parameters():
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_build_once_builds_a_single_time_and_leaves_nothing_after_a_failure(tmp_path):
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "weights").write_text("w")

    target = tmp_path / "model"
    assert build_once(target, build) == target and (target / "weights").read_text() == "w"
    build_once(target, build)
    assert len(calls) == 1

    def failing(out: Path) -> None:
        (out / "partial").write_text("p")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        build_once(tmp_path / "broken", failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_chat_template_renders_everything_so_prefixes_are_shared(tiny_model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path)
    system = {"role": "system", "content": "You are a coding agent. " * 40}
    tools = TOOLS[:1]
    a = tok.apply_chat_template([system, {"role": "user", "content": "first"}], tools=tools,
                                add_generation_prompt=True, tokenize=False)
    b = tok.apply_chat_template([system, {"role": "user", "content": "second question"}], tools=tools,
                                add_generation_prompt=True, tokenize=False)
    head = a[:a.index("first")]
    assert b.startswith(head) and system["content"] in head and '"get_weather"' in head
    turn = tok.apply_chat_template(
        [{"role": "user", "content": "q"},
         {"role": "assistant", "content": "", "tool_calls": [
             {"id": "c1", "type": "function", "function": {"name": "Read", "arguments": {"file_path": "a"}}}]},
         {"role": "tool", "content": "file text"}], add_generation_prompt=True, tokenize=False)
    assert '<tool_call>\n{"name": "Read", "arguments": {"file_path": "a"}}\n</tool_call>' in turn
    assert "<tool_response>\nfile text\n</tool_response>" in turn
    assert turn.endswith("<|im_start|>assistant\n")


# --- the real server fixtures -------------------------------------------------------------
def test_real_server_reuses_the_kv_prefix_of_a_shared_system_prompt(mlx_server):
    system = {"role": "system", "content": "Follow the project rules carefully. " * 60}
    first = post(mlx_server.url, {"messages": [system, {"role": "user", "content": "one"}], "max_tokens": 2})
    second = post(mlx_server.url, {"messages": [system, {"role": "user", "content": "two, longer"}],
                                   "max_tokens": 2})
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert cached > first["usage"]["prompt_tokens"] // 2


def test_private_server_is_restarted_after_a_crash_or_on_request(mlx_server_factory):
    server = mlx_server_factory()
    old = server.kill(signal.SIGKILL)
    server.wait_ready()
    assert server.pid not in (None, old)
    assert server.status.restarts == 1 and server.status.restart_causes["exited"] == 1
    assert post(server.url, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1})["choices"]
    previous = server.request_restart("wedged")  # what a watchdog would call
    server.wait_ready()
    assert server.pid not in (None, previous)
    assert server.status.restart_causes == {"exited": 1, "wedged": 1}
    server.stop()
    assert server.pid is None and server.status.state == "stopped"


# --- the tool fixture model ---------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_raw_variant_replies_exactly_whatever_surrounds_the_trigger(mlx_tool_server, case):
    server = mlx_tool_server("raw")
    messages = [{"role": "system", "content": "You are a coding agent. " * 200},
                {"role": "user", "content": "earlier turn"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": f"Please {case.trigger.upper()} now."}]
    assert message(server.url, messages, tools=TOOLS)["content"] == case.reply


def test_raw_variant_tool_result_and_fallback(mlx_tool_server):
    server = mlx_tool_server("raw")
    turn2 = [{"role": "user", "content": "weather in paris?"},
             {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
                 "name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
    assert message(server.url, turn2)["content"] == TOOL_RESULT.reply
    assert message(server.url, [{"role": "user", "content": "unrelated"}])["content"] == FALLBACK.reply


def _calls(msg: dict) -> list[tuple[str, dict]]:
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in msg.get("tool_calls", [])]


def test_json_variant_returns_structured_calls(mlx_tool_server):
    server = mlx_tool_server("json")
    msg = message(server.url, [{"role": "user", "content": "weather in Paris and London?"}], tools=TOOLS)
    assert _calls(msg) == [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"})]
    msg = message(server.url, [{"role": "user", "content": "read the README"}], tools=TOOLS)
    assert _calls(msg) == [("Read", {"file_path": "README.md"})]


def test_xml_variant_returns_structured_calls(mlx_tool_server):
    server = mlx_tool_server("xml")
    msg = message(server.url, [{"role": "user", "content": "weather in Tokyo?"}], tools=TOOLS)
    assert _calls(msg) == [("get_weather", {"city": "Tokyo"})]


def test_replies_are_identical_when_batched_and_streamed(mlx_tool_server):
    from concurrent.futures import ThreadPoolExecutor

    server = mlx_tool_server("raw")
    case = next(c for c in CASES if c.name == "long_count")
    body = {"messages": [{"role": "user", "content": case.trigger}], "max_tokens": 400}
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: post(server.url, body)["choices"][0]["message"]["content"], range(4)))
    assert replies == [case.reply] * 4
    req = urllib.request.Request(server.url + "/v1/chat/completions",
                                 data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        events = [json.loads(line[6:]) for line in resp.read().decode().splitlines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == case.reply
    assert len(events) > 20  # many chunks: usable for streaming and cancellation tests
