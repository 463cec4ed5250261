"""The SSE decoder under every way the network can cut the bytes."""
import random

import pytest

from proxy.sse import SSEDecoder, SSEEvent, encode_comment, encode_json

STREAM = (b": keepalive 1/3\n\n"
          b"data: {\"a\": 1}\n\n"
          b"event: message_start\ndata: {\"b\":\ndata: 2}\n\n"
          b"data: x\r\n\r\n"
          b"data: [DONE]\n\n")
EXPECTED = [SSEEvent(comment="keepalive 1/3"), SSEEvent(data='{"a": 1}'),
            SSEEvent(data='{"b":\n2}', event="message_start"), SSEEvent(data="x"), SSEEvent(data="[DONE]")]


def decode(pieces):
    d = SSEDecoder()
    out = []
    for p in pieces:
        out += d.feed(p)
    return out + d.close()


def test_whole_stream():
    assert decode([STREAM]) == EXPECTED


@pytest.mark.parametrize("seed", range(20))
def test_any_split_gives_the_same_events(seed):
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(STREAM)), rng.randint(1, 15)))
    pieces = [STREAM[a:b] for a, b in zip([0] + cuts, cuts + [len(STREAM)])]
    assert decode(pieces) == EXPECTED


def test_one_byte_at_a_time_with_crlf_split():
    assert decode([bytes([b]) for b in STREAM]) == EXPECTED


def test_unterminated_last_event_is_delivered_on_close():
    assert decode([b"data: tail"]) == [SSEEvent(data="tail")]


def test_oversized_line_is_refused():
    d = SSEDecoder(max_buffer=100)
    with pytest.raises(ValueError):
        d.feed(b"data: " + b"x" * 200)


def test_encoders_round_trip():
    raw = encode_json({"k": "v"}, event="ping") + encode_comment("keep-alive")
    assert decode([raw]) == [SSEEvent(data='{"k":"v"}', event="ping"), SSEEvent(comment="keep-alive")]


def test_a_long_event_in_small_pieces_comes_out_whole():
    """A 4 MB event in 4 KB reads (a big tool call), with CR line ends split across reads."""
    payload = "x" * (4 << 20)
    raw = b"data: " + payload.encode() + b"\r\n\r\ndata: after\r\n\r\n"
    assert decode([raw[i:i + 4096] for i in range(0, len(raw), 4096)]) == [SSEEvent(data=payload),
                                                                          SSEEvent(data="after")]
    assert decode([raw[:len(raw) - 17], raw[len(raw) - 17:]]) == [SSEEvent(data=payload), SSEEvent(data="after")]


def reference_decode(raw: bytes) -> list[SSEEvent]:
    """The event-stream rules applied line by line, as simply as they read (the oracle)."""
    out, data, event = [], [], None
    for line in raw.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data or event:
                out.append(SSEEvent("\n".join(data) if data else None, event))
            data, event = [], None
        elif line.startswith(":"):
            out.append(SSEEvent(comment=line[1:].lstrip(" ")))
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:
        out.append(SSEEvent("\n".join(data), event))
    return out


# Many one-line events (a generating server) mixed with every other shape, in one read or many.
MIXED = (b"".join(b'data: {"n": %d}\n\n' % i for i in range(30))
         + b": keepalive 7/9\n\ndata:no-space\n\n\n\ndata: a\ndata: b\n\nevent: ping\ndata: {}\n\n"
         + b"event:\n\ndata: after-empty-event\n\nretry: 10\nid: 3\ndata: with-fields\n\n"
         + b"data: {\"last\": 1}\r\n\r\ndata: [DONE]\n\n")


@pytest.mark.parametrize("seed", range(30))
def test_bulk_decoding_matches_the_line_by_line_rules_however_the_bytes_are_cut(seed):
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(MIXED)), rng.randint(0, 40)))
    pieces = [MIXED[a:b] for a, b in zip([0] + cuts, cuts + [len(MIXED)])]
    assert decode(pieces) == reference_decode(MIXED)
