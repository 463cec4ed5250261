"""The raw-body memo: repeats skip parsing, answers and counters stay exactly the same."""
import httpx

from proxy.cache.memo import BodyMemo, Prepared


def test_digest_separates_protocols_and_namespaces():
    d = BodyMemo.digest
    assert d("chat", "", b"{}") == d("chat", "", b"{}")
    assert len({d("chat", "", b"{}"), d("messages", "", b"{}"), d("chat", "team", b"{}"), d("chat", "", b"{ }")}) == 4


def test_bounded_lru():
    memo = BodyMemo(max_entries=2)
    for i in range(3):
        memo.put(bytes([i]), Prepared(f"k{i}", False, False))
    assert memo.get(bytes([0])) is None and len(memo) == 2
    memo.get(bytes([1]))
    memo.put(bytes([3]), Prepared("k3", False, False))
    assert memo.get(bytes([1])) is not None and memo.get(bytes([2])) is None


def test_repeated_bytes_hit_and_still_count_rules(scripted, start_proxy):
    proxy = start_proxy(scripted.url)
    raw = (b'{"model": "x", "messages": [{"role": "system", "content": "x-anthropic-billing-header: cch=1;\\n'
           b'Be brief."}, {"role": "user", "content": "hi"}], "stream": true}')
    statuses = []
    for _ in range(3):
        r = httpx.post(proxy.url + "/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
        statuses.append(r.headers["X-Cache-Status"])
        assert r.text.rstrip().endswith("data: [DONE]")  # the memo remembers it was a stream
    assert statuses == ["MISS", "HIT", "HIT"] and scripted.chat_calls == 1
    rules = httpx.get(proxy.url + "/health").json()["rules"]
    assert sum(rule["hits"] for rule in rules) == 3
    # the same bytes in another namespace are another entry
    other = httpx.post(proxy.url + "/v1/chat/completions", content=raw,
                       headers={"Content-Type": "application/json", "X-Cache-Namespace": "b"})
    assert other.headers["X-Cache-Status"] == "MISS"
