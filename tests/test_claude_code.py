"""Real Claude Code (each pinned version, from npm) through the proxy, headless and offline.

In front of the scripted upstream, the model writes a text tool call for Read; Claude Code runs
the tool, the result comes back through the proxy, and the final answer carries the file's
secret word (the scripted model repeats the tool result it was given: nothing is hard-coded).
The same prompt again is answered from the cache. In front of the real mlx_lm.server on the
generated tool model, a plain round trip. Both with the model name the README recommends and
with `local` (with which 2.1 puts a system message inside `messages`).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.rig.claude_code import PINNED_VERSIONS, ClaudeCode
from tests.rig.request_shape import client_shape, load, tool_names
from tests.rig.scripted_upstream import Script

SECRET = "PELICAN"
PROMPT = "Read the file secret.txt and tell me the secret word."
MODEL_NAMES = ("claude-sonnet-4-5", "local")


@pytest.fixture(scope="module", params=PINNED_VERSIONS)
def claude(request) -> ClaudeCode:
    return ClaudeCode(request.param)


def agent_model(secret_path: Path):
    """A scripted model that behaves like an agent: asked about the secret with Read declared, it
    writes a Hermes text tool call; given a tool result, it repeats it; else it says hello."""
    def respond(body: dict) -> Script:
        messages = body["messages"]
        last = messages[-1]
        if last["role"] == "tool":
            return Script(text="The file says: " + last["content"])
        declared = {t["function"]["name"] for t in body.get("tools") or ()}
        if "Read" in declared and "secret word" in last["content"]:
            call = {"name": "Read", "arguments": {"file_path": str(secret_path)}}
            return Script(text="I will read it.\n<tool_call>\n" + json.dumps(call) + "\n</tool_call>")
        return Script(text="Hello.")
    return respond


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_a_tool_round_trip_then_the_same_prompt_from_the_cache(claude, model, scripted, start_proxy, tap, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    secret = work / "secret.txt"
    secret.write_text(f"The secret word is {SECRET}.\n")
    scripted.respond_with(agent_model(secret))
    proxy = start_proxy(scripted.url)
    recorded = tap(proxy.url)

    first = claude.run(recorded.url, PROMPT, home=tmp_path, workdir=work, model=model, allowed_tools=("Read",))
    assert first.exit_code == 0, (first.output, first.stderr[-2000:])
    assert SECRET in first.result and first.output.get("num_turns", 0) >= 2
    tool_results = [r for r in scripted.received if r.body and r.body["messages"][-1]["role"] == "tool"]
    assert tool_results and SECRET in tool_results[-1].body["messages"][-1]["content"]

    if model == "local":  # the committed fixture has the shape this version really sends
        turn2 = recorded.seen[-1]
        fixture = load(f"claude-code-{claude.version}-turn2.json")
        assert turn2.path == fixture["path"]
        assert client_shape(turn2.body) == client_shape(fixture["body"])
        assert tool_names(turn2.body) == tool_names(fixture["body"])

    calls = scripted.chat_calls
    again = claude.run(proxy.url, PROMPT, home=tmp_path, workdir=work, model=model, allowed_tools=("Read",))
    assert again.exit_code == 0, (again.output, again.stderr[-2000:])
    assert SECRET in again.result
    assert scripted.chat_calls == calls  # every request of the second run was a cache hit


def test_a_plain_round_trip_against_the_real_server(claude, mlx_tool_server, start_proxy, tmp_path):
    server = mlx_tool_server("raw")
    proxy = start_proxy(server.url, tokenizer_path=server.model_path)
    run = claude.run(proxy.url, "Say hello", home=tmp_path, model="local")
    assert run.exit_code == 0, (run.output, run.stderr[-2000:])
    assert run.result == server.model.case("hello").reply


def test_a_tool_the_proxy_cannot_run_fails_as_a_tool_error_and_the_session_goes_on(scripted, start_proxy, tmp_path):
    """Claude Code 2.0 declares WebSearch, which it runs by asking the API for Anthropic's
    server-side web search: the proxy refuses that with a 400 naming the tool type; Claude Code
    hands the model a tool error, and the turn still ends with an answer."""
    def respond(body: dict) -> Script:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return Script(text="The search tool said: " + last["content"][:200])
        if "WebSearch" in {t["function"]["name"] for t in body.get("tools") or ()} and "search" in last["content"]:
            return Script(text='<tool_call>\n{"name": "WebSearch", "arguments": {"query": "mlx proxy"}}\n</tool_call>')
        return Script(text="Hello.")
    scripted.respond_with(respond)
    proxy = start_proxy(scripted.url)
    run = ClaudeCode("2.0.77").run(proxy.url, "Please search the web for mlx proxy.", home=tmp_path,
                                   allowed_tools=("WebSearch",))
    assert run.exit_code == 0, (run.output, run.stderr[-2000:])
    assert run.result.startswith("The search tool said: ")
    assert "tool type `web_search_20250305` is not supported" in run.result


def test_warmups_left_behind_by_claude_p_do_not_keep_the_server_busy(scripted, start_proxy, tmp_path):
    """Claude Code 2.0 sends `Warmup` requests for its subagents and exits without waiting for
    them: once it has exited, nothing is still generating upstream."""
    def respond(body: dict) -> Script:
        if body["messages"][-1]["content"].strip() == "Warmup":
            return Script(chunks=[f"w{i} " for i in range(300)], delay=0.1)  # 30 s, like a CPU prefill
        return Script(text="Hello.")
    scripted.respond_with(respond)
    proxy = start_proxy(scripted.url)
    run = ClaudeCode("2.0.77").run(proxy.url, "Say hello", home=tmp_path)
    exited = time.monotonic()
    assert run.exit_code == 0 and run.result == "Hello.", (run.output, run.stderr[-2000:])
    warmups = [r for r in scripted.received if r.body and r.body["messages"][-1]["content"].strip() == "Warmup"]
    assert warmups, "Claude Code 2.0.77 sends warm-ups"
    while scripted.active and time.monotonic() - exited < 10:
        time.sleep(0.05)
    assert scripted.active == 0 and time.monotonic() - exited < 3
