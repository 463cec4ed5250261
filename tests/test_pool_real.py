"""A pool of three REAL mlx_lm.server processes (the generated tiny model) behind the proxy,
and two proxies sharing one real redis-server: affinity keeps a conversation where its KV
cache is, a dead member's conversations move on and it rejoins, a restarted member is warmed
up.

Which member served a turn is read from /health (each member's `routed` counts); how much of
the prompt the member already held is mlx_lm.server's own `cached_tokens`. Every conversation
opens with a nonce of its own, so no test profits from another's KV cache.
"""
from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.rig.request_shape import FIXTURES

HEALTH_INTERVAL = 0.2  # the pool checks its members this often (production: 2 s)
READY_DEADLINE = 120.0  # a loaded CI box may take long to load the tiny model
# Above Settings.background_max_tokens: an agent turn, not a background request.
ANSWER_TOKENS = 80


@pytest.fixture(scope="module")
def three_servers(mlx_server_factory):
    return [mlx_server_factory() for _ in range(3)]


def _system_text() -> str:
    body = json.loads((FIXTURES / "anyclaude-chat-completions-turn1.json").read_text())["body"]
    return body["messages"][0]["content"]


SYSTEM = _system_text()  # Claude Code's system prompt shape, ~8 KB


class Conversation:
    """A Claude-Code-like conversation: its system prompt, then turns of user questions and
    the model's own answers."""

    def __init__(self) -> None:
        self.messages = [{"role": "system", "content": f"Session {uuid.uuid4().hex}.\n{SYSTEM}"}]
        self.turns = 0

    def ask(self, proxy_url: str, max_tokens: int = ANSWER_TOKENS) -> dict:
        self.turns += 1
        self.messages.append({"role": "user", "content": f"Question {self.turns}: what changed in step {self.turns}?"})
        r = httpx.post(proxy_url + "/v1/chat/completions", json={"messages": self.messages, "max_tokens": max_tokens},
                       timeout=120)
        assert r.status_code == 200, r.text
        out = r.json()
        self.messages.append({"role": "assistant", "content": out["choices"][0]["message"]["content"]})
        return out["usage"]


def health(proxy_url: str) -> dict:
    return httpx.get(proxy_url + "/health", timeout=10).json()


def members(proxy_url: str) -> dict[str, dict]:
    return {m["url"]: m for m in health(proxy_url)["upstreams"]}


def routed(proxy_url: str) -> dict[str, int]:
    """Generations each member was sent."""
    return {url: sum(m["routed"].values()) for url, m in members(proxy_url).items()}


def served(proxy_url: str, turn) -> tuple[str, dict]:
    """Run `turn()` (one generation through `proxy_url`); the member that served it, and its result."""
    before = routed(proxy_url)
    result = turn()
    after = members(proxy_url)
    # (a member that failed to connect was routed to first, and is out of the pool now)
    [url] = [u for u, m in after.items() if sum(m["routed"].values()) != before.get(u, 0) and m["state"] == "ready"]
    return url, result


def wait_until(what: str, check, deadline: float = READY_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def all_serving(proxy_url: str) -> bool:
    return all(m["state"] == "ready" for m in members(proxy_url).values())


def cached(usage: dict) -> int:
    return (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0


def pool_proxy(start_proxy, servers, **settings):
    proxy = start_proxy(tuple(s.url for s in servers), pool_health_interval=HEALTH_INTERVAL, **settings)
    wait_until("every member to serve", lambda: all_serving(proxy.url))
    return proxy


def test_a_conversation_stays_on_one_upstream_from_either_proxy_and_finds_its_prefix_there(
        three_servers, start_proxy, redis_server):
    a = pool_proxy(start_proxy, three_servers, cache=redis_server.url)
    b = pool_proxy(start_proxy, three_servers, cache=redis_server.url)
    talk = Conversation()
    turns = [served(proxy.url, lambda p=proxy: talk.ask(p.url)) for proxy in (a, b, a, b, a)]
    where = [url for url, _ in turns]
    usages = [usage for _, usage in turns]
    print("affinity: upstreams", where, "prompt", [u["prompt_tokens"] for u in usages],
          "cached", [cached(u) for u in usages])
    assert len(set(where)) == 1  # both proxies route it alike: they share the route in Redis
    for before, now in zip(usages, usages[1:]):  # each turn finds all of the previous turn's prompt
        assert cached(now) >= before["prompt_tokens"]
    assert members(a.url)[where[0]]["affinity_hits"] + members(b.url)[where[0]]["affinity_hits"] == 4
    metrics = httpx.get(a.url + "/metrics").text
    assert f'mlx_proxy_routed_total{{reason="affinity",upstream="{where[0]}"}} 2.0' in metrics
    assert f'mlx_proxy_prefix_tokens_reused_total{{upstream="{where[0]}"}}' in metrics


def test_round_robin_spreads_a_conversation_and_loses_its_prefix(three_servers, start_proxy):
    proxy = pool_proxy(start_proxy, three_servers, routing="round_robin", cache="none")
    talk = Conversation()
    turns = [served(proxy.url, lambda: talk.ask(proxy.url)) for _ in range(5)]
    usages = [usage for _, usage in turns]
    print("round robin: upstreams", [url for url, _ in turns], "prompt", [u["prompt_tokens"] for u in usages],
          "cached", [cached(u) for u in usages])
    assert len({url for url, _ in turns[:3]}) == 3
    for before, now in zip(usages, usages[1:]):  # never on the member that holds the last turn
        assert cached(now) < before["prompt_tokens"]


def test_a_dead_members_conversations_move_on_and_it_rejoins_when_back(three_servers, start_proxy, redis_server):
    proxy = pool_proxy(start_proxy, three_servers, cache=redis_server.url)
    talk = Conversation()
    home, _ = served(proxy.url, lambda: talk.ask(proxy.url))
    assert served(proxy.url, lambda: talk.ask(proxy.url))[0] == home
    # a second conversation that lives on the same member, to see it come back there
    other = Conversation()
    for _ in range(12):
        if served(proxy.url, lambda: other.ask(proxy.url))[0] == home:
            break
        other = Conversation()
    else:
        pytest.fail("no new conversation landed on the member under test")
    server = next(s for s in three_servers if s.url == home)

    # a turn in flight when the member dies: the only request allowed to fail
    started, outcome = threading.Event(), {}

    def in_flight():
        body = {"messages": [*talk.messages, {"role": "user", "content": "Write a long answer."}],
                "max_tokens": 400, "stream": True}
        with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, timeout=120) as r:
            for line in r.iter_lines():
                if '"content"' in line:
                    started.set()
                outcome["last"] = line
    flight = threading.Thread(target=in_flight)
    flight.start()
    assert started.wait(60)
    server.stop()
    flight.join(60)

    moved = [served(proxy.url, lambda: talk.ask(proxy.url)) for _ in range(2)]  # no client error
    assert {url for url, _ in moved} != {home} and len({url for url, _ in moved}) == 1
    assert cached(moved[1][1]) >= moved[0][1]["prompt_tokens"]  # its new home keeps it from then on
    assert members(proxy.url)[home]["state"] == "failed"

    server.start()
    wait_until("the member to rejoin", lambda: members(proxy.url)[home]["state"] == "ready")
    assert members(proxy.url)[home]["restarts"] >= 1
    assert served(proxy.url, lambda: other.ask(proxy.url))[0] == home  # its conversation is routed back


def _ttft(proxy_url: str, talk: Conversation) -> tuple[float, dict]:
    """One more turn, streamed: seconds to its first content, and its usage."""
    talk.turns += 1
    talk.messages.append({"role": "user", "content": f"Question {talk.turns}: and then?"})
    body = {"messages": talk.messages, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    begun, first, usage = time.perf_counter(), None, None
    with httpx.stream("POST", proxy_url + "/v1/chat/completions", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[6:])
                if first is None and any(c["delta"].get("content") for c in event["choices"]):
                    first = time.perf_counter() - begun
                usage = event.get("usage") or usage
    return (first if first is not None else time.perf_counter() - begun), usage


@pytest.mark.parametrize("warmup", [4, 0])
def test_a_restarted_member_is_warmed_up_with_the_conversations_it_served(three_servers, start_proxy, warmup):
    proxy = pool_proxy(start_proxy, three_servers, cache="none", warmup_prompts=warmup)
    talk = Conversation()
    home = None
    for _ in range(3):
        home, usage = served(proxy.url, lambda: talk.ask(proxy.url))
    last_prompt = usage["prompt_tokens"]
    server = next(s for s in three_servers if s.url == home)
    restarts = members(proxy.url)[home]["restarts"]
    server.kill()  # a crash: its supervisor (as mlx-launch's) starts it again
    server.wait_ready()
    wait_until("the pool to see the member back", lambda: members(proxy.url)[home]["restarts"] > restarts
               and members(proxy.url)[home]["state"] == "ready")
    if warmup:
        wait_until("the warm-up", lambda: members(proxy.url)[home]["warmed"] >= 1)
    ttft, usage = _ttft(proxy.url, talk)
    print(f"warm-up {warmup}: first token after restart {ttft * 1000:.1f} ms, "
          f"cached {cached(usage)} of {usage['prompt_tokens']}")
    assert members(proxy.url)[home]["routed"].get("affinity", 0) >= 3  # the restarted member kept it
    if warmup:  # the previous turn's whole prompt was prefilled again before this turn came
        assert cached(usage) >= last_prompt
    else:
        assert cached(usage) < 0.1 * last_prompt
