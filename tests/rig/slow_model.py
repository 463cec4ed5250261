"""A random model slow enough on the CPU that one prefill chunk outlasts a short watchdog window.

Same tokenizer and ChatML template as tiny-random, but hidden 512 and 4 layers: the CPU build
of MLX prefills it at ~60 tokens/s on 2 cores, so a prompt of a few hundred tokens is one
silent `--prefill-step-size` chunk of several seconds (as a 2048-token chunk of a real model
is minutes on a laptop CPU). Built once per machine (~10 MB, a few seconds).
"""
from __future__ import annotations

from pathlib import Path

from launcher.tiny_model import (CHATML_TEMPLATE, TINY_RANDOM_PARAMS, build_once, cache_root, content_key,
                                 new_model, qwen2_config, save_model, train_tokenizer, tiny_corpus)

SLOW_PARAMS = {**TINY_RANDOM_PARAMS, "hidden_size": 512, "num_hidden_layers": 4}


def _build(out: Path) -> None:
    tokenizer = train_tokenizer(tiny_corpus(), SLOW_PARAMS["vocab_size"], CHATML_TEMPLATE)
    config = qwen2_config(tokenizer, SLOW_PARAMS["hidden_size"], SLOW_PARAMS["num_hidden_layers"])
    save_model(out, tokenizer, config, new_model(config, SLOW_PARAMS["seed"]))


def slow_model_path() -> Path:
    key = content_key(SLOW_PARAMS, sources=[__file__])
    return build_once(cache_root() / "test-models" / f"slow-{key}", _build)
