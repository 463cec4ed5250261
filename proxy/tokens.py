"""Token counting for Anthropic's count_tokens: the served model's own tokenizer when it can be
loaded from disk (never from a hub), otherwise the translator's estimate.

The tokenizer is loaded once, lazily, in a worker thread (transformers takes seconds to import),
and the chat template is applied exactly as mlx_lm.server applies it, so the count is what the
prompt will really cost.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from .translate.messages import estimate_tokens

log = logging.getLogger(__name__)


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

    async def count(self, chat_request: dict) -> tuple[int, str]:
        """(tokens, "exact" | "estimate")."""
        tokenizer = await self._load()
        if tokenizer is not None:
            try:
                ids = await asyncio.to_thread(
                    tokenizer.apply_chat_template, chat_request.get("messages", []),
                    tools=chat_request.get("tools") or None, add_generation_prompt=True, tokenize=True,
                    return_dict=False)
                return len(ids), "exact"
            except Exception as e:
                log.warning("chat template failed for count_tokens (%s); estimating", type(e).__name__)
        return estimate_tokens(chat_request), "estimate"
