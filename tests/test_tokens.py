"""Counting a long prompt in pieces gives the tokenizer's count of the whole (proxy/tokens.py),
with the real tokenizers the tests serve: tiny-random's and SmolLM2's (GPT-2-style BPE)."""
from __future__ import annotations

import asyncio
import random

import pytest
from transformers import AutoTokenizer

from launcher.smollm2 import smollm2_path
from proxy.tokens import TokenCounter, counting_pieces


def _text(seed: int, chars: int) -> str:
    """Prose, code and blank lines mixed, as a long agent session holds."""
    rng = random.Random(seed)
    words = ["the", "model", "def", "return", "x", "(", ")", "{", "}", "=", "ünïcode", "数字", "42", "\t"]
    out, size = [], 0
    while size < chars:
        line = " ".join(rng.choice(words) for _ in range(rng.randint(0, 14)))
        line = "    " * rng.randint(0, 2) + line + "\n" * rng.choice((1, 1, 2, 3))
        out.append(line)
        size += len(line)
    return "".join(out)


def test_pieces_cover_the_text_and_end_where_pretokenizers_split():
    text = _text(1, 50_000)
    pieces = counting_pieces(text, size=1_000)
    assert "".join(pieces) == text and len(pieces) > 40
    for piece, following in zip(pieces, pieces[1:]):
        lone_break = piece.endswith("\n") and not piece[-2].isspace() and not following[0].isspace()
        lone_space = following.startswith(" ") and not piece[-1].isspace() and not following[1].isspace()
        assert lone_break or lone_space
    assert counting_pieces("x" * 5_000, size=1_000) == ["x" * 5_000]  # no boundary: one piece


@pytest.fixture(scope="module", params=["tiny-random", "smollm2-135m"])
def tokenizer_path(request, tiny_model_path):
    return tiny_model_path if request.param == "tiny-random" else str(smollm2_path())


def test_counting_in_pieces_equals_the_whole(tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    for seed in range(3):
        text = _text(seed, 60_000)
        whole = len(tokenizer.encode(text, add_special_tokens=False))
        pieces = sum(len(tokenizer.encode(p, add_special_tokens=False)) for p in counting_pieces(text, 2_000))
        assert pieces == whole


def test_the_count_is_the_chat_template_tokenized(tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    messages = [{"role": "user", "content": _text(7, 300_000)}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "go on"}]
    expected = len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                 return_dict=False))
    assert asyncio.run(TokenCounter(tokenizer_path).exact({"messages": messages})) == expected
