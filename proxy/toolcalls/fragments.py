"""The upstream's structured tool calls, streamed in fragments, put back together (pure).

OpenAI-compatible servers stream a call as a first delta with `index`, `id`, `type` and
`function.name` (arguments empty or partial), then deltas carrying only
`{"index": i, "function": {"arguments": "<fragment>"}}` (llama.cpp, vLLM, LM Studio, Ollama;
llama-cpp-python repeats id, type and name in every fragment). mlx_lm.server sends each call
whole in one delta. Fragments are gathered by `index` whatever their order (calls may
interleave, arguments may come before the name, the last fragment may ride on the chunk that
carries `finish_reason`), and the calls are released once the message is finished, whole, for
the normalization every call goes through (declared names, JSON arguments, ids).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from .arguments import canonical_arguments


@dataclass
class _Call:
    id: str = ""
    type: str = "function"
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    whole_arguments: object = None  # arguments sent as a JSON value instead of text

    def add(self, delta: dict) -> None:
        if isinstance(delta.get("id"), str) and delta["id"] and not self.id:
            self.id = delta["id"]
        if isinstance(delta.get("type"), str) and delta["type"]:
            self.type = delta["type"]
        fn = delta.get("function")
        if not isinstance(fn, dict):
            return
        name = fn.get("name")
        if isinstance(name, str) and name and name != self.name:  # a repeated name is not a continuation
            self.name += name
        args = fn.get("arguments")
        if isinstance(args, str):
            self.arguments.append(args)
        elif args is not None:
            self.whole_arguments = args

    def complete(self) -> bool:
        """Its arguments so far are a whole JSON value."""
        if self.whole_arguments is not None:
            return True
        try:
            orjson.loads("".join(self.arguments))
        except orjson.JSONDecodeError:
            return False
        return True

    def as_delta(self) -> dict:
        """The call as one whole delta (mlx_lm.server's shape)."""
        args = self.whole_arguments if self.whole_arguments is not None else "".join(self.arguments)
        if not isinstance(args, str):
            # not an object (a list, a number): as it came, for normalize_upstream_calls to refuse
            args = canonical_arguments(args) or orjson.dumps(args).decode()
        return {"id": self.id, "type": self.type, "function": {"name": self.name, "arguments": args}}


class StructuredCalls:
    """Gathers `delta.tool_calls` fragments; `release()` gives the whole calls, in order."""

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        self._by_index: dict[int, _Call] = {}

    def feed(self, deltas: list) -> None:
        for delta in deltas:
            if isinstance(delta, dict):
                self._call_for(delta).add(delta)

    def _call_for(self, delta: dict) -> _Call:
        """The call a delta continues, or a new one. Same `index` is the same call, unless the
        delta plainly starts another: a different id, or a whole call (name and arguments)
        after one whose arguments are already complete (upstreams that number every whole
        call 0). A delta with no `index` continues the latest call unless it starts one."""
        index = delta.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = None
        current = self._by_index.get(index) if index is not None else (self._calls[-1] if self._calls else None)
        if current is None or _starts_another(current, delta):
            current = _Call()
            self._calls.append(current)
            if index is not None:
                self._by_index[index] = current
        return current

    def release(self) -> list[dict]:
        calls = [c.as_delta() for c in self._calls]
        self._calls, self._by_index = [], {}
        return calls

    def __bool__(self) -> bool:
        return bool(self._calls)


def _starts_another(call: _Call, delta: dict) -> bool:
    new_id = delta.get("id")
    if isinstance(new_id, str) and new_id and call.id and new_id != call.id:
        return True
    fn = delta.get("function") if isinstance(delta.get("function"), dict) else {}
    whole = isinstance(fn.get("name"), str) and fn["name"] and fn.get("arguments") not in (None, "")
    return bool(whole) and call.complete()
