"""Muse Spark calls:
`<atem:function_calls><atem:invoke name="NAME"><atem:parameter name="KEY">VALUE</atem:parameter></atem:invoke></atem:function_calls>`.
Values are typed by the schema."""
import re

from ..calls import DeclaredTools, RawCall, invoke_calls

START, END = "<atem:function_calls>", "</atem:function_calls>"

_INVOKE = re.compile(r"\s*<atem:invoke\b[^>]*?\bname=\"([^\"]+)\"[^>]*>(.*?)</atem:invoke>", re.S)
_PARAM = re.compile(r"\s*<atem:parameter\b[^>]*?\bname=\"([^\"]+)\"[^>]*>(.*?)</atem:parameter>", re.S)


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return invoke_calls(body, _INVOKE, _PARAM, tools)
