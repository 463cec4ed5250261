"""The cross-proxy relay codec: every kind of event survives the trip, tagged by its leader."""
from proxy.completion import Finish, ReasoningDelta, TextDelta, ToolCall, ToolCallDelta, Usage
from proxy.relay import decode_items, encode_items
from proxy.upstream import Comment


def test_round_trip():
    items = [Comment("keepalive 1/3"), ReasoningDelta("hmm"), TextDelta("héllo \\u2028 \n"),
             ToolCallDelta(0, ToolCall("call_1", "Read", '{"file_path": "a"}')),
             Finish("tool_calls", Usage(10, 3, 8)), Finish("stop")]
    leader, back = decode_items(encode_items("tok", items))
    assert leader == "tok" and back == items
