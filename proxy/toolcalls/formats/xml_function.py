"""`<function=NAME>...</function>` without an outer `<tool_call>`: Qwen3-Coder parameters
(often emitted bare) or Functionary v3.1 / Llama 3.1 custom-tool JSON (`<function=NAME>{...}`)."""
from ..arguments import arguments_object
from ..calls import COMPLETE, DeclaredTools, RawCall, json_value_at, still_open
from .qwen3_xml import parameters

START, END = "<function=", "</function>"


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return _call(body, tools) or still_open(body, "<parameter=", "</parameter>")


def _call(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    name, sep, inner = body.partition(">")
    name = name.strip()
    if not sep or not name or "\n" in name:
        return None
    if inner.lstrip().startswith("{"):
        status, value, end = json_value_at(inner, 0)
        if status != COMPLETE or inner[end:].strip():
            return None
        args = arguments_object(value)
    else:
        args = parameters(inner, name, tools)
    return None if args is None else [(name, args)]
