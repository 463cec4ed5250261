"""What the served chat template does with a request, learnt once by rendering it (no model).

  * `renders_tools`: whether declared tools reach the prompt at all. mlx_lm.server logs
    "Received tools but model does not support tool calling" and serves the request without
    them when the template ignores `tools` (SmolLM2's does): the model never sees them and the
    client gets no sign. The proxy then writes them into the prompt itself (tool_prompt.py).
  * `opens_reasoning`: whether the generation prompt ends inside a reasoning block (`<think>`
    pre-filled), so the model's answer starts as reasoning and a lone `</think>` ends it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..toolcalls.registry import REASONING_ZONES

_PROBE_MESSAGES = [{"role": "user", "content": "ping"}]
_PROBE_TOOL = {"type": "function", "function": {
    "name": "mlx_proxy_probe_tool", "description": "a probe",
    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
_OPENINGS = tuple(opening for opening, _ in REASONING_ZONES)


@dataclass(frozen=True)
class TemplateFacts:
    renders_tools: bool
    opens_reasoning: bool

    def to_json(self) -> dict:
        return {"renders_tools": self.renders_tools, "opens_reasoning": self.opens_reasoning}


def learn(tokenizer: Any) -> TemplateFacts:
    """Render a tiny conversation with and without a probe tool (raises if the template fails)."""
    def render(**kwargs) -> str:
        return tokenizer.apply_chat_template(_PROBE_MESSAGES, add_generation_prompt=True, tokenize=False, **kwargs)

    plain = render()
    with_tool = render(tools=[_PROBE_TOOL])
    return TemplateFacts(renders_tools=with_tool != plain and _PROBE_TOOL["function"]["name"] in with_tool,
                         opens_reasoning=plain.rstrip().endswith(_OPENINGS))
