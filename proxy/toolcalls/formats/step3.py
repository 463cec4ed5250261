"""StepFun Step-3 calls (vLLM's step3 parser):

    <｜tool_calls_begin｜><｜tool_call_begin｜>function<｜tool_sep｜><steptml:invoke name="NAME">
    <steptml:parameter name="KEY">VALUE</steptml:parameter></steptml:invoke><｜tool_call_end｜>
    <｜tool_calls_end｜>

(Step-3.5 writes Qwen3-Coder's XML: qwen3_xml.py.) Values are typed by the schema.
"""
import re

from ..calls import DeclaredTools, RawCall, invoke_calls

START, END = "<｜tool_calls_begin｜>", "<｜tool_calls_end｜>"

_CALL = re.compile(r"\s*<｜tool_call_begin｜>\s*function\s*<｜tool_sep｜>\s*<steptml:invoke name=\"([^\"]+)\">(.*?)"
                   r"</steptml:invoke>\s*<｜tool_call_end｜>", re.S)
_PARAM = re.compile(r"\s*<steptml:parameter name=\"([^\"]+)\">(.*?)</steptml:parameter>", re.S)


def parse(body: str, tools: DeclaredTools) -> list[RawCall] | None:
    return invoke_calls(body, _CALL, _PARAM, tools)
