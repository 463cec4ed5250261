"""Token counting for Anthropic's count_tokens: the served model's own tokenizer when it can be
loaded from disk (never from a hub), otherwise the translator's estimate.

The tokenizer is loaded once, lazily, in a worker thread (transformers takes seconds to import),
and the chat template is applied exactly as mlx_lm.server applies it, so the count is what the
prompt will really cost. A long prompt is tokenized in pieces cut where the tokenizer's
pre-tokenizer splits anyway (`counting_pieces`): a fast tokenizer keeps ~400 bytes per token
(offsets, strings) while it works, 2 GB for a 10 MB prompt in one piece.
"""
from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson

from .upstream.template import TemplateFacts, learn

log = logging.getLogger(__name__)

# The estimate: ~4 characters per token for English and code with BPE vocabularies, plus a
# few template tokens per message (role markers, separators).
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_tokens(chat_request: dict) -> int:
    """An estimate of a chat prompt's tokens when no tokenizer is at hand (count_tokens, and the
    usage of an upstream that reports none).

    Counts the characters of every message text, tool call and tool definition and divides by
    CHARS_PER_TOKEN; good to ~20% for English and code, enough for a client's context meter.
    """
    chars = 0
    messages = chat_request.get("messages") or []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            chars += len(fn.get("name") or "") + len(fn.get("arguments") or "")
    if chat_request.get("tools"):
        chars += len(orjson.dumps(chat_request["tools"]))
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


# Prompt text tokenized at once, at most; longer text goes in pieces of about this size.
COUNTING_PIECE_CHARS = 100_000
# Where a piece may end: after a lone line break between two non-space characters, or before
# a lone space between them. BPE pre-tokenizers (GPT-2, Llama 3, Qwen) split there too, so the
# pieces' counts add up to the whole's (a run of line breaks they split unevenly: not there);
# SentencePiece may differ by a token per piece.
_PIECE_END = re.compile(r"(?<=\S)[\n ](?=\S)")


def counting_pieces(text: str, size: int = COUNTING_PIECE_CHARS) -> list[str]:
    """`text` cut into pieces of about `size` characters (more when no boundary comes sooner)."""
    pieces, start = [], 0
    while len(text) - start > size:
        end = _PIECE_END.search(text, start + size)
        if end is None:
            break
        cut = end.end() if end.group() == "\n" else end.start()
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _count_prompt(tokenizer: Any, chat_request: dict) -> int:
    text = tokenizer.apply_chat_template(chat_request.get("messages", []), tools=chat_request.get("tools") or None,
                                         add_generation_prompt=True, tokenize=False)
    # as apply_chat_template(tokenize=True) encodes it: the template writes the special tokens
    return sum(len(tokenizer.encode(piece, add_special_tokens=False)) for piece in counting_pieces(text))


class TokenCounter:
    def __init__(self, tokenizer_path: str) -> None:
        self.path = tokenizer_path
        self._tokenizer: Any = None
        self._loading: asyncio.Task | None = None
        self._failed = not tokenizer_path

    async def _load(self) -> Any:
        if self._tokenizer is None and not self._failed:
            if self._loading is None:
                self._loading = asyncio.create_task(asyncio.to_thread(self._load_sync))
            self._tokenizer = await self._loading
        return self._tokenizer

    def _load_sync(self) -> Any:
        try:
            from transformers import AutoTokenizer
            return AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        except Exception as e:  # any failure means: estimate instead
            log.warning("cannot load the tokenizer at %s (%s); count_tokens will estimate", self.path,
                        type(e).__name__)
            self._failed = True
            return None

    def preload(self) -> None:
        """Start loading in the background, so the first request does not wait for it."""
        if not self._failed:
            asyncio.ensure_future(self._load())

    async def exact(self, chat_request: dict) -> int | None:
        """The prompt's tokens with the served model's tokenizer and template; None if unknown."""
        tokenizer = await self._load()
        if tokenizer is None:
            return None
        try:
            return await asyncio.to_thread(_count_prompt, tokenizer, chat_request)
        except Exception as e:
            log.warning("the chat template failed while counting tokens (%s)", type(e).__name__)
            return None

    async def template_facts(self) -> TemplateFacts | None:
        """What the served template does with tools and reasoning; None without a tokenizer."""
        tokenizer = await self._load()
        if tokenizer is None:
            return None
        try:
            return await asyncio.to_thread(learn, tokenizer)
        except Exception as e:
            log.warning("cannot render the chat template to learn what it does (%s)", type(e).__name__)
            return None

    async def count(self, chat_request: dict) -> tuple[int, str]:
        """(tokens, "exact" | "estimate")."""
        exact = await self.exact(chat_request)
        if exact is not None:
            return exact, "exact"
        return estimate_tokens(chat_request), "estimate"
