"""The cross-proxy relay codec: every kind of event survives the trip, tagged by its leader."""
import pytest

from proxy.cache.relay import RelayGap, RelayReader, decode_items, encode_items
from proxy.completion import Finish, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage
from proxy.upstream.client import Comment


def test_round_trip():
    items = [Comment("keepalive 1/3"), ReasoningDelta("hmm"), TextDelta("héllo \\u2028 \n"),
             ToolCallDelta(0, ToolCall("call_1", "Read", '{"file_path": "a"}')),
             Finish("tool_calls", Usage(10, 3, 8)), Finish("stop")]
    leader, seq, back = decode_items(encode_items("tok", 7, items))
    assert (leader, seq, back) == ("tok", 7, items)


def _batches(leader: str, *sizes: int) -> list[bytes]:
    out, seq = [], 0
    for n in sizes:
        out.append(encode_items(leader, seq, [TextDelta(f"{leader}{seq + i} ") for i in range(n)]))
        seq += n
    return out


def test_reader_passes_one_leaders_batches_on_in_order():
    reader = RelayReader()
    assert not reader.streamed
    texts = [item.text for raw in _batches("a", 2, 1, 3) for item in reader.accept(raw)]
    assert texts == ["a0 ", "a1 ", "a2 ", "a3 ", "a4 ", "a5 "] and reader.streamed


@pytest.mark.parametrize("order", [(0, 2), (0, 1, 0), (0, 0)], ids=["missing", "rewound", "repeated"])
def test_batches_out_of_sequence_are_a_gap(order):
    reader = RelayReader()
    batches = _batches("a", 2, 2, 2)
    with pytest.raises(RelayGap):
        for i in order:
            reader.accept(batches[i])


def test_another_leaders_events_after_ours_are_a_gap():
    reader = RelayReader()
    reader.accept(_batches("a", 2)[0])
    with pytest.raises(RelayGap):
        reader.accept(_batches("b", 1)[0])


def test_a_leader_whose_start_is_gone_is_not_followed_but_the_next_one_is():
    reader = RelayReader()
    a = _batches("a", 2, 2)
    assert reader.accept(a[1]) == [] and reader.accept(a[1]) == [] and not reader.streamed
    assert [i.text for i in reader.accept(_batches("b", 1)[0])] == ["b0 "] and reader.streamed
