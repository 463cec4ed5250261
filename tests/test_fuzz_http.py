"""Random request bodies through the real proxy: never a 5xx, always a JSON error body."""
import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rig.scripted_upstream import Script

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", "developer", "x"]),
                                 "content": st.none() | st.text(max_size=20) | st.lists(JSON_VALUES, max_size=2)})
CHAT_LIKE = st.fixed_dictionaries({"messages": st.lists(MESSAGE, max_size=3) | JSON_VALUES},
                                  optional={"max_tokens": JSON_VALUES, "temperature": JSON_VALUES, "tools": JSON_VALUES,
                                            "stream": st.booleans(), "tool_choice": JSON_VALUES, "stop": JSON_VALUES,
                                            "input": JSON_VALUES, "system": JSON_VALUES})
PATHS = ["/v1/chat/completions", "/v1/responses", "/v1/messages"]


def test_random_bodies_never_get_a_5xx(scripted, start_proxy):
    scripted.script(Script(text="ok"))
    proxy = start_proxy(scripted.url, cache="none")

    @settings(max_examples=150, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(path=st.sampled_from(PATHS), body=CHAT_LIKE | JSON_VALUES)
    def check(path, body):
        r = httpx.post(proxy.url + path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        assert r.status_code < 500, (path, body, r.text)
        if r.status_code >= 400:
            err = r.json()
            assert "error" in err

    check()
