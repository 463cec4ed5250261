"""A tiny DETERMINISTIC tool-calling model for end-to-end tests against the stock server.

Its chat template ignores everything but the last message: a trigger phrase in the last user
message (case-insensitive substring, first match wins), a last message with role "tool", or
anything else selects one of a few short canonical prompts. A 2-layer qwen2 is trained until
every reply token wins greedy decoding by a wide logit margin, so temperature 0 (the server's
default) reproduces each reply exactly, also when requests are batched or the prompt cache is
reused, whatever the system prompt, tools or history.

Three variants share the weights and differ only in the tool parser mlx-lm picks:
`json` (json_tools: <tool_call>{json}</tool_call> comes back as structured tool_calls),
`xml` (qwen3_coder: <tool_call><function=...> is structured), `raw` (no parser: every reply,
calls included, comes back as text, so the proxy's own extraction must find the calls).

    model = build_tool_model_cached()      # built once per machine (content-hash cache)
    model.path("json"); model.case("weather_paris").reply

`python -m tests.rig.tool_model` builds it and prints where.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from launcher.tiny_model import (IM_END, PAD, build_once, cache_root, content_key, qwen2_config,
                                 new_model, save_model, train_tokenizer)


@dataclass(frozen=True)
class Case:
    name: str
    trigger: str  # lower-case phrase looked for in the last user message
    reply: str  # the exact text the model writes


def _counting(n: int) -> str:
    return "Counting: " + ", ".join(str(i) for i in range(1, n + 1)) + "."


# First match wins, so longer triggers come before their prefixes.
CASES: tuple[Case, ...] = (
    Case("two_calls", "weather in paris and london",
         '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "get_weather", "arguments": {"city": "London"}}\n</tool_call>'),
    Case("weather_paris", "weather in paris",
         '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'),
    Case("read_readme", "read the readme",
         '<tool_call>\n{"name": "Read", "arguments": {"file_path": "README.md"}}\n</tool_call>'),
    Case("text_then_call", "weather in rome",
         'Let me check that.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>'),
    # A call with no wrapper at all, as some local models write them.
    Case("bare_json", "list the files", '{"name": "list_files", "arguments": {"path": "."}}'),
    # Qwen3-Coder's XML call format.
    Case("xml_call", "weather in tokyo",
         '<tool_call>\n<function=get_weather>\n<parameter=city>\nTokyo\n</parameter>\n</function>\n</tool_call>'),
    # llama.cpp's generic JSON call: what the proxy asks a model to write when its template
    # drops tools (proxy/normalize/tool_prompt.py).
    Case("generic_call", "weather in oslo",
         '{"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}}'),
    Case("hello", "say hello", "Hello! I am a tiny fixture model."),
    # ~120 tokens arriving over many stream chunks, for streaming and cancellation tests. A
    # counting sequence is learnt quickly (each number predicts the next); longer replies
    # widen every training batch and slow the build (200 numbers: minutes instead of seconds).
    # For longer streams use the tiny-random model with max_tokens: it rarely stops early.
    Case("long_count", "count to forty", _counting(40)),
)
TOOL_RESULT = Case("tool_result", "", "The tool returned a result. Done.")  # last message is a tool result
FALLBACK = Case("fallback", "", "I only answer fixture prompts.")  # anything else

# variant -> tool_parser_type written to tokenizer_config.json (None: no parser)
VARIANTS: dict[str, str | None] = {"json": "json_tools", "xml": "qwen3_coder", "raw": None}

# Tool definitions matching the cases, for requests that declare tools.
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "Read", "description": "Read a file",
     "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]}}},
    {"type": "function", "function": {"name": "list_files", "description": "List files",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
]

# Training: stop once every reply token beats the runner-up by MARGIN logits (greedy decoding
# then cannot flip under batching noise); give up after MAX_STEPS.
TRAIN_PARAMS = {"seed": 0, "margin": 6.0, "max_steps": 1500, "lr": 3e-3, "vocab_size": 400,
                "hidden_size": 64, "num_hidden_layers": 2}
_CHECK_EVERY = 25
_MIN_ACCEPTABLE_MARGIN = 2.0


def _key(case: Case) -> str:
    return f"[{case.name}]"


def keyed_template() -> str:
    """Chat template mapping the last message to its case's canonical prompt."""
    branches = ["{%- if last.role == 'tool' -%}{%- set key = '" + _key(TOOL_RESULT) + "' -%}"]
    for case in CASES:
        branches.append("{%- elif last.role == 'user' and '" + case.trigger + "' in text -%}"
                        "{%- set key = '" + _key(case) + "' -%}")
    branches.append("{%- else -%}{%- set key = '" + _key(FALLBACK) + "' -%}{%- endif -%}")
    return ("{%- set last = messages[-1] -%}"
            "{%- set text = (last.content if last.content is string else '') | lower -%}"
            + "".join(branches)
            + "{{- '<|im_start|>user\\n' + key + '<|im_end|>\\n' -}}"
            "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}")


def _examples() -> list[tuple[list[dict], str]]:
    """(messages selecting a case, reply) for every case."""
    out = [([{"role": "user", "content": c.trigger}], c.reply) for c in CASES]
    out.append(([{"role": "tool", "content": "any"}], TOOL_RESULT.reply))
    out.append(([{"role": "user", "content": "something else"}], FALLBACK.reply))
    return out


def _train(model, seqs: list[list[int]], starts: list[int], pad: int, params: dict) -> tuple[float, int]:
    """Train on reply tokens only until the smallest greedy margin exceeds params['margin']."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    width = max(map(len, seqs))
    x = mx.array([s[:-1] + [pad] * (width - len(s)) for s in seqs])
    y = mx.array([s[1:] + [pad] * (width - len(s)) for s in seqs])
    # position i predicts token i+1: the reply starts at the prompt's last position
    mask = mx.array([[1.0 if st - 1 <= i < len(s) - 1 else 0.0 for i in range(width - 1)]
                     for s, st in zip(seqs, starts)])

    def loss_fn(m):
        return (nn.losses.cross_entropy(m(x), y) * mask).sum() / mask.sum()

    def min_margin(m) -> float:
        logits = m(x)
        target = mx.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
        others = mx.where(mx.arange(logits.shape[-1]) == y[..., None], -1e9, logits).max(-1)
        return mx.where(mask > 0, target - others, 1e9).min().item()

    opt = optim.AdamW(learning_rate=params["lr"], weight_decay=0.0)
    step_fn = nn.value_and_grad(model, loss_fn)
    margin, step = float("-inf"), 0
    for step in range(1, params["max_steps"] + 1):
        _, grads = step_fn(model)
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
        if step % _CHECK_EVERY == 0:
            margin = min_margin(model)
            if margin > params["margin"]:
                break
    return margin, step


def build_tool_model(out: Path, params: dict = TRAIN_PARAMS) -> None:
    """Train the model and write the json/xml/raw variants plus cases.json into `out`."""
    t0 = time.monotonic()
    examples = _examples()
    template = keyed_template()
    from jinja2 import Template
    rendered = [Template(template).render(messages=m, add_generation_prompt=True) + r for m, r in examples]
    tokenizer = train_tokenizer(rendered * 20, params["vocab_size"], template)
    # Token ids as the server builds them: the templated prompt, then the reply on its own
    # closed by the EOS token.
    eos = tokenizer.convert_tokens_to_ids(IM_END)
    seqs, starts = [], []
    for messages, reply in examples:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=False)
        seqs.append(list(prompt) + tokenizer.encode(reply, add_special_tokens=False) + [eos])
        starts.append(len(prompt))
    config = qwen2_config(tokenizer, params["hidden_size"], params["num_hidden_layers"])
    model = new_model(config, params["seed"])
    margin, steps = _train(model, seqs, starts, tokenizer.convert_tokens_to_ids(PAD), params)
    if margin <= _MIN_ACCEPTABLE_MARGIN:
        raise RuntimeError(f"tool fixture model did not converge: margin {margin:.2f} after {steps} steps")
    for variant, parser in VARIANTS.items():
        save_model(out / variant, tokenizer, config, model,
                   tokenizer_extra={"tool_parser_type": parser} if parser else None)
    (out / "cases.json").write_text(json.dumps({
        "cases": [c.__dict__ for c in CASES], "tool_result": TOOL_RESULT.reply, "fallback": FALLBACK.reply,
        "train": {"steps": steps, "margin": round(margin, 2), "seconds": round(time.monotonic() - t0, 1),
                  "reply_tokens": [len(s) - st for s, st in zip(seqs, starts)]}}, indent=1))


@dataclass(frozen=True)
class ToolModel:
    root: Path

    def path(self, variant: str) -> Path:
        if variant not in VARIANTS:
            raise KeyError(f"unknown variant {variant!r}; one of {sorted(VARIANTS)}")
        return self.root / variant

    @staticmethod
    def case(name: str) -> Case:
        return {c.name: c for c in (*CASES, TOOL_RESULT, FALLBACK)}[name]

    @property
    def training(self) -> dict:
        return json.loads((self.root / "cases.json").read_text())["train"]


def build_tool_model_cached() -> ToolModel:
    """The tool model, trained on first use (~10-40 s on 2 cores) and cached by content hash."""
    key = content_key({**TRAIN_PARAMS, "variants": VARIANTS}, sources=[__file__])
    return ToolModel(build_once(cache_root() / "test-models" / f"tool-{key}", build_tool_model))


if __name__ == "__main__":
    t = time.monotonic()
    m = build_tool_model_cached()
    print(f"{m.root} ({time.monotonic() - t:.1f} s): {m.training}")
