"""The table of tool-call formats the scanner knows, and of text it never scans.

A format is a module in `formats/` exposing the same few names:

marker formats (found anywhere in prose):
    START: str                 the text that opens a call block
    END: str | None            the text that closes it; None: the block is as long as `measure` says
    parse(body, tools) -> list[RawCall] | MORE | None     the block's inside -> calls; None if not
                               this format; MORE (END only) if the END lies inside a value, so
                               the scanner tries the next END
    measure(body, final) -> int | None             (END is None only) length of the call text at the
                               start of `body`; None: cannot tell yet; -1: never a call. Must give
                               the same number for every longer text once it gives one; never None
                               when `final`.
tail formats (only as the last thing in the message, from a line start):
    viable(text, tools) -> bool   False once `text` can no longer grow into this format's calls
                                  followed by nothing but whitespace (an early no; never a wrong no)
    parse(text, tools) -> list[RawCall] | None     the whole candidate (stripped) -> calls

Several marker formats may share a START (Hermes JSON, Qwen3-Coder XML and GLM all open with
`<tool_call>`): the scanner tries their `parse` in table order.
"""
from __future__ import annotations

from types import ModuleType

from .formats import (bare_json, call_syntax, calling_tool, claude_xml, command_r, deepseek, function_attr,
                      function_gemma, functionary, gemma4, glm, gpt_oss, gpt_oss_recipient, gpt_oss_start,
                      granite, granite_fc, hermes, internlm, jamba, json_fence, kimi_k2, kimi_k3, lfm_pythonic,
                      llama3, llama4_pythonic, longcat, minicpm5, minimax, mistral, muse_spark, nemotron, olmo3,
                      phi4_mini, pythonic_tail, qwen3_xml, seed_oss, step3, tool_code_fence, tools_wrapper,
                      xml_function)

MARKER_FORMATS: tuple[ModuleType, ...] = (
    hermes, qwen3_xml, glm, xml_function, function_attr, mistral, llama3, llama4_pythonic,
    deepseek, kimi_k2, kimi_k3, minimax, claude_xml, olmo3, gpt_oss, gpt_oss_recipient,
    gpt_oss_start, granite, granite_fc, functionary, command_r, function_gemma, gemma4, phi4_mini,
    lfm_pythonic, jamba, longcat, seed_oss, internlm, minicpm5, muse_spark, nemotron, step3,
    calling_tool, tools_wrapper,
)
TAIL_FORMATS: tuple[ModuleType, ...] = (bare_json, json_fence, call_syntax, pythonic_tail,
                                         tool_code_fence)

# Text that is never scanned for calls: (opening, closing). Reasoning stays text as it was.
REASONING_ZONES: tuple[tuple[str, str], ...] = (
    ("<think>", "</think>"),
    ("<|channel|>analysis<|message|>", "<|end|>"),  # gpt-oss's reasoning channel
    ("<seed:think>", "</seed:think>"),  # Seed-OSS
)
