"""Kimi K3 calls (XTML):

    <|open|>tools<|sep|>
      <|open|>call tool="NAME" index="1"<|sep|>
        <|open|>argument key="KEY" type="string"<|sep|>VALUE<|close|>argument<|sep|>
      <|close|>call<|sep|>
    <|close|>tools<|sep|>

An argument's own `type` says how to read it (a string is kept exactly); a call may instead
carry one `<|open|>json ...<|sep|>{...}<|close|>json<|sep|>` object.
"""
import re

from ..arguments import JSON_DECODER, arguments_object
from ..calls import COMPLETE, RawCall, json_value_at

START, END = "<|open|>tools<|sep|>", "<|close|>tools<|sep|>"

_CALL = re.compile(r"\s*<\|open\|>call([^<]*)<\|sep\|>(.*?)<\|close\|>call<\|sep\|>", re.S)
_ARG = re.compile(r"\s*<\|open\|>argument([^<]*)<\|sep\|>(.*?)<\|close\|>argument<\|sep\|>", re.S)
_JSON = re.compile(r"\s*<\|open\|>json[^<]*<\|sep\|>(.*?)<\|close\|>json<\|sep\|>\s*", re.S)
_ATTR = re.compile(r'(\w+)="([^"]*)"')


def _attrs(text: str) -> dict[str, str]:
    return {k: v.replace("&quot;", '"').replace("&amp;", "&") for k, v in _ATTR.findall(text)}


def _value(raw: str, kind: str):
    if kind == "string":
        return raw
    status, value, end = json_value_at(raw, 0)
    return value if status == COMPLETE and not raw[end:].strip() else raw


def _arguments(inner: str) -> dict | None:
    if (block := _JSON.fullmatch(inner)) is not None:
        try:
            return arguments_object(JSON_DECODER.decode(block.group(1)))
        except ValueError:
            return None
    args, pos = {}, 0
    while (m := _ARG.match(inner, pos)) is not None:
        attrs = _attrs(m.group(1))
        if "key" not in attrs:
            return None
        args[attrs["key"]] = _value(m.group(2), attrs.get("type", "string"))
        pos = m.end()
    return None if inner[pos:].strip() else args


def parse(body, tools) -> list[RawCall] | None:
    calls: list[RawCall] = []
    pos = 0
    while (m := _CALL.match(body, pos)) is not None:
        name, args = _attrs(m.group(1)).get("tool"), _arguments(m.group(2))
        if not name or args is None:
            return None
        calls.append((name, args))
        pos = m.end()
    return calls if calls and not body[pos:].strip() else None
