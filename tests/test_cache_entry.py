"""Entry encoding: round trips, compression above the threshold only, damaged values refused."""
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from proxy.cache.entry import ZLIB_LEVEL, EntryDecodeError, StoredEntry, decode_entry, encode_entry
from proxy.completion import Completion, ToolCall, Usage

CALL = ToolCall("call_1", "Edit", '{"file_path": "/src/app.py", "old_string": "a", "new_string": "b"}')


def completion(content: str = "hello", **kw) -> Completion:
    return Completion(content=content, finish_reason=kw.pop("finish_reason", "stop"), **kw)


def test_round_trip_keeps_every_field_and_the_store_time():
    c = completion("ünïcode ✓ text", tool_calls=(CALL,), reasoning="thinking", usage=Usage(120, 30, 100),
                   model="qwen", created=1_700_000_000, finish_reason="tool_calls")
    assert decode_entry(encode_entry(c, 1234.5, compress_min_bytes=1 << 20)) == StoredEntry(c, 1234.5)
    assert decode_entry(encode_entry(c, 1234.5, compress_min_bytes=0)) == StoredEntry(c, 1234.5)


def test_values_below_the_threshold_stay_plain_json():
    c = completion("short")
    raw = encode_entry(c, 1.0, compress_min_bytes=1024)
    assert raw.endswith(c.to_json())


def test_values_at_or_above_the_threshold_are_compressed_and_smaller():
    c = completion("the same line of code again\n" * 200)
    body = c.to_json()
    raw = encode_entry(c, 1.0, compress_min_bytes=len(body))
    assert len(raw) < len(body) / 5
    assert body not in raw
    assert decode_entry(raw).completion == c


@pytest.mark.parametrize("content", ["a", "xy" * 40, "the same words " * 50])
def test_compression_is_kept_only_when_it_makes_the_value_smaller(content):
    c = completion(content)
    body = c.to_json()
    raw = encode_entry(c, 1.0, compress_min_bytes=0)
    assert len(raw) == 9 + min(len(body), len(zlib.compress(body, ZLIB_LEVEL)))
    assert decode_entry(raw).completion == c


@pytest.mark.parametrize("raw", [b"", b"j123", b"x" + b"\0" * 8 + b"{}", b"j" + b"\0" * 8 + b"not json",
                                 b"z" + b"\0" * 8 + b"not zlib", b"j" + b"\0" * 8 + b'{"content": "x"}',
                                 b"z" + b"\0" * 8 + zlib.compress(b"[1, 2]")])
def test_damaged_or_foreign_values_raise_a_decode_error(raw):
    with pytest.raises(EntryDecodeError):
        decode_entry(raw)


@settings(max_examples=100, deadline=None)
@given(content=st.text(max_size=3000), reasoning=st.none() | st.text(max_size=200),
       stored_at=st.floats(min_value=0, max_value=4e9), threshold=st.integers(0, 4096))
def test_any_completion_round_trips(content, reasoning, stored_at, threshold):
    c = completion(content, reasoning=reasoning, usage=Usage(1, 2))
    assert decode_entry(encode_entry(c, stored_at, threshold)) == StoredEntry(c, stored_at)
