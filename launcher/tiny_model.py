"""Tiny qwen2 models built locally in seconds, so the whole pipeline runs with no model hub.

The builders here are shared by `--model tiny-random` (random weights, text is noise) and the
test suite's trained tool-calling fixture (tests/rig/tool_model.py). A build is cached under a
directory named by a content hash of its parameters and of the generator's source, so each
model is built once per machine and a change to the generator builds a fresh one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .config import MODEL_CACHE_ENV

IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
CHATML_SPECIALS = (PAD, IM_START, IM_END)

# ChatML as the Qwen2.5 family renders it: system first, tools (if any) listed in the system
# turn, assistant tool calls as <tool_call> JSON, tool results as user turns. Every message is
# rendered, so two requests with the same long system prompt share a token prefix and the
# server's KV prefix cache behaves as it does with a real model. It deliberately does not name
# `tool_call.name`, so mlx-lm infers no tool parser: a noise model's stray "<tool_call>" must
# not be parsed.
CHATML_TEMPLATE = (
    "{%- set msgs = messages -%}"
    "{%- if tools or msgs[0].role == 'system' -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if msgs[0].role == 'system' -%}{{- msgs[0].content -}}{%- set msgs = msgs[1:] -%}{%- endif -%}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n<tools>' -}}"
    "{%- for t in tools -%}{{- '\\n' + (t | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\nReturn each function call as JSON inside <tool_call></tool_call> tags.' -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- for m in msgs -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' + (m.content or '') -}}"
    "{%- for c in m.tool_calls or [] -%}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + c.function.name + '\", \"arguments\": '"
    " + (c.function.arguments | tojson) + '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif m.role == 'tool' -%}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + m.content + '\\n</tool_response><|im_end|>\\n' -}}"
    "{%- else -%}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Parameters of the tiny random model; the cache key hashes them. Hidden 64 and 2 layers keep
# the weights ~100 KB and a forward pass well under a millisecond on a CPU.
TINY_RANDOM_PARAMS: dict[str, Any] = {
    "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 512, "seed": 0,
}
# Text the tiny-random tokenizer is trained on: chat markup, JSON and code-ish words, so that
# realistic requests tokenize into a realistic number of tokens (a few characters each).
_TINY_CORPUS = [
    "You are a helpful coding assistant. Answer the user's questions about the code.",
    'Return each function call as JSON inside <tool_call></tool_call> tags. {"name": "Read", '
    '"arguments": {"file_path": "README.md"}} {"type": "function", "function": {"name": "Bash"}}',
    "def main(argv: list[str]) -> int:\n    return 0\n\nclass Server:\n    pass\n",
    "The quick brown fox jumps over the lazy dog. What is the weather in Paris today?",
    "import os, sys, json\nfor line in open(path):\n    print(line.strip())\n",
]


def cache_root() -> Path:
    """Where generated models live: $MLX_PROXY_MODEL_CACHE, else the XDG cache directory."""
    if os.environ.get(MODEL_CACHE_ENV):
        return Path(os.environ[MODEL_CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mlx-proxy"


def content_key(params: dict[str, Any], sources: Iterable[str | Path] = ()) -> str:
    """Short hash of the generator's parameters and source files: the build's identity."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for src in (Path(__file__), *map(Path, sources)):
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def build_once(target: Path, build: Callable[[Path], None]) -> Path:
    """Build into a temporary sibling and rename it into place, so a crash or a concurrent
    build never leaves a half-written model at `target`; the first finished build wins."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first: keep theirs
            if not target.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def train_tokenizer(corpus: list[str], vocab_size: int, chat_template: str,
                    specials: tuple[str, ...] = CHATML_SPECIALS):
    """A byte-level BPE tokenizer trained in-process (any text encodes; no unknown tokens),
    wrapped as a transformers fast tokenizer with ChatML's end-of-turn as EOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END, pad_token=PAD,
                                   bos_token=None)
    fast.chat_template = chat_template
    return fast


def qwen2_config(tokenizer, hidden_size: int = 64, num_hidden_layers: int = 2) -> dict[str, Any]:
    """config.json of a small qwen2 (the architecture of Qwen2.5, a common local coder)."""
    return dict(model_type="qwen2", hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                intermediate_size=2 * hidden_size, num_attention_heads=4, num_key_value_heads=2,
                rms_norm_eps=1e-6, vocab_size=len(tokenizer), rope_theta=10000.0,
                max_position_embeddings=32768, tie_word_embeddings=True,
                eos_token_id=tokenizer.convert_tokens_to_ids(IM_END))


def new_model(config: dict[str, Any], seed: int):
    """A qwen2 model with seeded random weights."""
    import mlx.core as mx
    from mlx_lm.models import qwen2

    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    return model


def save_model(out: Path, tokenizer, config: dict[str, Any], model,
               tokenizer_extra: dict[str, Any] | None = None) -> None:
    """Write a folder mlx_lm.server loads like a hub checkpoint. `tokenizer_extra` adds keys
    to tokenizer_config.json (e.g. `tool_parser_type`, read by mlx-lm's tokenizer loader)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    if tokenizer_extra:
        path = out / "tokenizer_config.json"
        data = json.loads(path.read_text())
        data.update(tokenizer_extra)
        path.write_text(json.dumps(data, indent=1))
    (out / "config.json").write_text(json.dumps(config, indent=1))
    mx.save_safetensors(str(out / "model.safetensors"), dict(tree_flatten(model.parameters())))


def tiny_corpus() -> list[str]:
    """What the tiny-random tokenizer is trained on."""
    return _TINY_CORPUS * 8


def build_tiny_random(out: Path, params: dict[str, Any] = TINY_RANDOM_PARAMS) -> None:
    """The offline model: random weights, a real tokenizer and chat template."""
    tokenizer = train_tokenizer(tiny_corpus(), params["vocab_size"], CHATML_TEMPLATE)
    config = qwen2_config(tokenizer, params["hidden_size"], params["num_hidden_layers"])
    save_model(out, tokenizer, config, new_model(config, params["seed"]))


def tiny_random_path() -> Path:
    """The cached tiny-random model, built on first use (a few seconds, no network)."""
    target = cache_root() / "models" / f"tiny-random-{content_key(TINY_RANDOM_PARAMS)}"
    if not target.exists():
        started = time.monotonic()
        build_once(target, build_tiny_random)
        logging.getLogger("mlx_launch").info("built the tiny-random model in %.1f s: %s",
                                             time.monotonic() - started, target)
    return target
