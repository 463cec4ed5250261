"""The pool with scripted upstreams, for what real servers cannot be made to show at will: a
member that serves another model never gets the pool's conversations."""
from __future__ import annotations

import time

import httpx

from tests.rig.scripted_upstream import ScriptedUpstream


def test_a_member_serving_another_model_gets_nothing(server_loop, start_proxy):
    ours, other = ScriptedUpstream(server_loop), ScriptedUpstream(server_loop)
    other.model_name = "another-model"
    try:
        proxy = start_proxy((ours.url, other.url), pool_health_interval=0.05, cache="none")
        deadline = time.monotonic() + 30
        while True:  # until the health checks have asked both what they serve
            members = {m["url"]: m for m in httpx.get(proxy.url + "/health").json()["upstreams"]}
            if members[other.url]["profile"] and members[ours.url]["profile"]:
                break
            assert time.monotonic() < deadline, members
            time.sleep(0.02)
        assert members[other.url]["state"] == "ready" and not members[other.url]["serves_pool_model"]
        for i in range(8):  # eight conversations: with two usable members some would go to each
            r = httpx.post(proxy.url + "/v1/chat/completions", timeout=30,
                           json={"messages": [{"role": "user", "content": f"conversation {i}"}], "max_tokens": 100})
            assert r.status_code == 200, r.text
        assert ours.chat_calls == 8 and other.chat_calls == 0
    finally:
        ours.close()
        other.close()
