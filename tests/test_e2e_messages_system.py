"""Claude Code 2.1's request shapes against the REAL mlx_lm.server (tiny-random: its ChatML
template renders every message, as real models' templates do, so token counts and the KV
prefix cache behave as they would with a real model)."""
from __future__ import annotations

import httpx

from tests.rig.event_checkers import check_messages_stream, parse_sse

EPHEMERAL_1H = {"type": "ephemeral", "ttl": "1h"}
SYSTEM_BLOCKS = [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.abc; cc_entrypoint=sdk-cli;"},
                 {"type": "text", "text": "You are an agent for software work.", "cache_control": EPHEMERAL_1H}]


def usage_total(usage: dict) -> int:
    """Anthropic's input_tokens leaves out what the KV cache served: the prompt is the sum."""
    return usage["input_tokens"] + usage.get("cache_read_input_tokens", 0)


def test_system_messages_in_positions_0_1_and_last_are_served_and_counted_exactly(mlx_server, start_proxy):
    proxy = start_proxy(mlx_server.url, tokenizer_path=mlx_server.model_path, cache="none")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 4, "system": SYSTEM_BLOCKS, "messages": [
        {"role": "system", "content": "Rules for this project: be brief."},  # position 0, a string
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>\nctx\n</system-reminder>"},
                                     {"type": "text", "text": "What does main.py do?"}]},
        {"role": "system", "content": [{"type": "text", "text": "Second", "cache_control": EPHEMERAL_1H}]},
        {"role": "assistant", "content": "It prints."},
        {"role": "user", "content": "And then?"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment\ncwd: /work",  # last, blocks
                                        "cache_control": EPHEMERAL_1H}]},
    ], "thinking": {"type": "adaptive", "display": "omitted"}, "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}
    url = proxy.url + "/v1/messages?beta=true"
    served = httpx.post(url, json=body, headers={"anthropic-beta": "mid-conversation-system-2026-04-07"},
                        timeout=60)
    assert served.status_code == 200, served.text
    counted = httpx.post(proxy.url + "/v1/messages/count_tokens?beta=true", json=body, timeout=60)
    assert counted.status_code == 200 and counted.headers["X-Token-Count"] == "exact"
    assert counted.json()["input_tokens"] == usage_total(served.json()["usage"])


def test_three_turns_with_system_messages_reuse_the_whole_previous_conversation(mlx_server, start_proxy):
    """Each turn appends the reply, a user message and a system message (Claude Code 2.1's env
    message): the server's prefix cache covers every token of the previous turn's prompt."""
    proxy = start_proxy(mlx_server.url, cache="none")
    messages: list[dict] = []
    prompts, cached = [], []
    for turn in range(3):
        messages += [{"role": "user", "content": f"Question {turn}: what changed in module {turn}?"},
                     {"role": "system", "content": [{"type": "text", "text": f"# Environment\nturn {turn}",
                                                     "cache_control": {"type": "ephemeral"}}]}]
        reply = httpx.post(proxy.url + "/v1/messages", json={"model": "local", "max_tokens": 6, "system": SYSTEM_BLOCKS,
                                                             "messages": messages}, timeout=60).json()
        prompts.append(usage_total(reply["usage"]))
        cached.append(reply["usage"]["cache_read_input_tokens"])
        messages.append({"role": "assistant", "content": reply["content"]})
        # 2.1.332 sends the system message of an earlier turn as a plain string
        messages[-2] = {"role": "system", "content": f"# Environment\nturn {turn}"}
    assert cached[1] >= prompts[0] and cached[2] >= prompts[1], (prompts, cached)


def test_message_start_announces_the_prompt_size_on_a_miss_and_on_a_hit(mlx_server, start_proxy):
    proxy = start_proxy(mlx_server.url, tokenizer_path=mlx_server.model_path)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 4, "stream": True, "system": SYSTEM_BLOCKS,
            "messages": [{"role": "user", "content": "Count the tokens of this prompt."}]}
    for expected_cache in ("MISS", "HIT"):
        r = httpx.post(proxy.url + "/v1/messages", json=body, timeout=60)
        assert r.headers["X-Cache-Status"] == expected_cache
        events = parse_sse(r.content)
        check_messages_stream(events)
        start = next(data for name, data in events if name == "message_start")["message"]["usage"]
        final = next(data for name, data in events if name == "message_delta")["usage"]
        assert start["input_tokens"] == usage_total(final) > 10
