"""The pool's routing rule and its conversation digest (pure: proxy/pool/routing.py)."""
from __future__ import annotations

from proxy.normalize.request import claude_code_subagent
from proxy.pool.routing import Candidate, choose, prefix_digest, same_model
from proxy.pool.warm_log import WarmLog

A, B, C = "http://a:8080", "http://b:8080", "http://c:8080"


def cand(url: str, running: int = 0, queued: int = 0, capacity: int = 4, serving: bool = True,
         same: bool = True) -> Candidate:
    return Candidate(url, serving, same, running, queued, capacity)


def test_a_remembered_upstream_keeps_its_conversation_while_it_is_not_saturated():
    pool = [cand(A, running=4, queued=2), cand(B), cand(C)]
    assert choose(pool, "d", A, max_queued=2).__dict__ == {"url": A, "reason": "affinity"}
    pool[0] = cand(A, running=4, queued=3)  # more waiting than the threshold: the least loaded
    choice = choose(pool, "d", A, max_queued=2)
    assert choice.reason == "fallback" and choice.url in (B, C)


def test_a_remembered_upstream_that_is_down_or_serves_another_model_is_passed_over():
    for gone in (cand(A, serving=False), cand(A, same=False)):
        choice = choose([gone, cand(B, running=1), cand(C)], "d", A)
        assert (choice.url, choice.reason) == (C, "fallback")


def test_a_new_conversation_goes_to_the_least_loaded_and_ties_are_the_same_for_every_proxy():
    assert choose([cand(A, running=3), cand(B, running=1), cand(C, running=2)], "d", None).url == B
    # pressure is per slot: 2 of 8 is lighter than 1 of 2
    assert choose([cand(A, running=2, capacity=8), cand(B, running=1, capacity=2)], "d", None).url == A
    idle = [cand(A), cand(B), cand(C)]
    picks = {d: choose(idle, d, None) for d in (f"digest{i}" for i in range(60))}
    assert all(c.reason == "new" for c in picks.values())
    assert {c.url for c in picks.values()} == {A, B, C}  # spread over the pool...
    # ...and each the same whatever order a proxy lists its members in
    assert all(choose(list(reversed(idle)), d, None).url == c.url for d, c in picks.items())


def test_steerable_requests_keep_affinity_only_while_their_upstream_has_a_free_slot():
    assert choose([cand(A, running=3), cand(B)], "d", A, steerable=True).__dict__ == {"url": A, "reason": "affinity"}
    choice = choose([cand(A, running=4), cand(B)], "d", A, steerable=True)  # busy: out of its way
    assert (choice.url, choice.reason) == (B, "steered")
    assert choose([cand(A, running=4), cand(B, running=1)], "d", None, steerable=True).url == B


def test_a_claude_code_subagent_is_known_by_its_billing_line():
    line = "x-anthropic-billing-header: cc_version=2.1.332.abc; cc_entrypoint=sdk-cli;{} cch=00000;\n"
    def system(text, role="system"):
        return [{"role": role, "content": text}, {"role": "user", "content": "go"}]
    assert claude_code_subagent(system(line.format(" cc_is_subagent=true;") + "You are an agent."))
    assert claude_code_subagent([{"role": "system", "content": [{"type": "text", "text": line.format(
        " cc_is_subagent=true;")}, {"type": "text", "text": "You are an agent."}]}])
    assert not claude_code_subagent(system(line.format("") + "You are Claude Code."))  # the main session
    assert not claude_code_subagent(system("Explain cc_is_subagent=true to me."))  # not the billing line
    assert not claude_code_subagent([{"role": "user", "content": line.format(" cc_is_subagent=true;")}])
    assert not claude_code_subagent("no list") and not claude_code_subagent([])


def test_one_usable_upstream_takes_everything_and_none_gives_none():
    assert choose([cand(A, serving=False), cand(B, running=4, queued=9)], "d", A).__dict__ == \
        {"url": B, "reason": "only_healthy"}
    assert choose([cand(A, serving=False), cand(B, same=False)], "d", None) is None


def test_round_robin_takes_the_usable_upstreams_in_turn():
    pool = [cand(A), cand(B, serving=False), cand(C)]
    picks = [choose(pool, "d", A, policy="round_robin", turn=t) for t in range(4)]
    assert [c.url for c in picks] == [A, C, A, C] and {c.reason for c in picks} == {"round_robin"}


def _body(*messages, tools=None) -> dict:
    return {"messages": [{"role": r, "content": t} for r, t in messages], "tools": tools}


def test_every_turn_of_a_conversation_has_the_digest_of_its_first():
    turn1 = _body(("system", "You help."), ("user", "Fix the bug."))
    turn3 = _body(("system", "You help."), ("user", "Fix the bug."), ("assistant", "Done."),
                  ("user", "Now the tests."), ("assistant", "Passing."), ("user", "Thanks."))
    assert prefix_digest(turn1) == prefix_digest(turn3)
    assert prefix_digest(turn1) != prefix_digest(_body(("system", "You help."), ("user", "Write docs.")))
    assert prefix_digest(turn1) != prefix_digest(_body(("system", "You help."), ("user", "Fix the bug."),
                                                       tools=[{"type": "function"}]))
    # no user message at all: the whole list is the prefix
    assert prefix_digest(_body(("system", "x"))) != prefix_digest(_body(("system", "y")))


def test_a_server_listing_nothing_is_taken_for_the_pool_model():
    assert same_model(("qwen",), ("qwen", "other")) and same_model(("qwen",), ()) and same_model((), ("x",))
    assert not same_model(("qwen",), ("llama",))


def test_the_warm_log_keeps_the_newest_turn_of_each_conversation_within_its_bound():
    log = WarmLog(max_bytes=10)
    log.note("c1", b"aaa")
    log.note("c2", b"bbb")
    log.note("c1", b"aaaa")  # c1's newer turn replaces its older one and is now the newest
    assert log.newest(5) == [("c1", b"aaaa"), ("c2", b"bbb")] and log.nbytes == 7
    log.note("c3", b"cccc")  # 11 bytes: the oldest (c2) goes
    assert log.newest(5) == [("c3", b"cccc"), ("c1", b"aaaa")] and log.newest(1) == [("c3", b"cccc")]
    log.note("c4", b"x" * 11)  # larger than the whole bound: not kept, nothing else lost
    assert len(log) == 2 and log.newest(0) == []


def test_normalizing_reads_the_subagent_mark_before_the_billing_line_is_removed():
    from proxy.config import Settings
    from proxy.normalize import NormalizeConfig
    from proxy.normalize.request import normalize_chat
    cfg = NormalizeConfig.from_settings(Settings())
    billing = "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=cli; cc_is_subagent=true; cch=1a2b3;\n"
    req = normalize_chat({"messages": [{"role": "system", "content": billing + "You search code."},
                                       {"role": "user", "content": "Find it."}]}, cfg)
    assert req.subagent and req.upstream_body["messages"][0]["content"] == "You search code."
    assert not normalize_chat({"messages": [{"role": "user", "content": "hi"}]}, cfg).subagent
