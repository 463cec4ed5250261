"""Meituan LongCat calls: GLM's shape with prefixed tags,
`<longcat_tool_call>NAME<longcat_arg_key>k</longcat_arg_key><longcat_arg_value>v</longcat_arg_value></longcat_tool_call>`,
or a JSON object inside the same tags."""
from ..calls import json_block_calls, still_open
from .glm import key_value_call

START, END = "<longcat_tool_call>", "</longcat_tool_call>"


def parse(body, tools):
    if body.lstrip().startswith("{"):
        return json_block_calls(body)
    return (key_value_call(body, tools, "longcat_arg_key", "longcat_arg_value")
            or still_open(body, "<longcat_arg_value>", "</longcat_arg_value>"))
