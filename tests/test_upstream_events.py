"""One read of an upstream stream to its items (proxy/upstream/client.py `_read_events`): parsed
together, in order, and a bad event fails only what comes from it on."""
from proxy.sse import SSEDecoder
from proxy.upstream.client import Comment, _read_events


def events(raw: bytes):
    return SSEDecoder().feed(raw)


def test_a_read_gives_its_objects_and_comments_in_order_and_stops_at_done():
    items, done, error = _read_events(events(b': keepalive 1/2\n\ndata: {"a": 1}\n\ndata: {"b": [2]}\n\n'
                                             b"data: [DONE]\n\ndata: {\"after\": 1}\n\n"))
    assert items == [Comment("keepalive 1/2"), {"a": 1}, {"b": [2]}] and done and error is None


def test_a_bad_event_fails_with_what_came_before_it():
    for bad, code in ((b"data: not json", "upstream_bad_response"), (b"data: [1]", "upstream_bad_response"),
                      (b'data: {"error": {"message": "boom"}}', "upstream_error")):
        items, done, error = _read_events(events(b'data: {"a": 1}\n\n' + bad + b'\n\ndata: {"c": 3}\n\n'))
        assert items == [{"a": 1}] and not done and error is not None and error.code == code, (bad, error)


def test_an_event_holding_two_values_is_not_split_into_two():
    items, _, error = _read_events(events(b"data: 1,2\n\ndata: {}\n\n"))
    assert error is not None and error.code == "upstream_bad_response" and items == []
