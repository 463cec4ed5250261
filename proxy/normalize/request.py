"""The canonical request: one pure function per endpoint, from a parsed body to what is
forwarded upstream and what the cache key hashes.

Both come from the same canonical dict, built once: `key_material` is it, `upstream_body` is a
shallow copy with the transport fields the proxy sets itself (model, stream, stream_options).
They share nested objects (messages, tools); treat both as read-only.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..cache.keys import model_identity
from ..config import Settings
from ..errors import ProxyError, invalid
from .body import type_name
from .messages import canonical_messages, canonical_tools
from .rules import VolatileRules
from .scalars import (MAX_TOKENS_FIELDS, UPSTREAM_SAMPLING_DEFAULTS, canonical_max_tokens, canonicalize_scalars,
                      check_sampling_defaults, sampling_defaults)
from .tool_prompt import with_tool_prompt

# Dropped before forwarding and left out of the key: the upstream ignores them
# (parallel_tool_calls, cache_prompt, store, service_tier, user, metadata) or, for
# draft_model/adapters, would unload the served model to load what the client names.
DROPPED_FIELDS = frozenset({"parallel_tool_calls", "cache_prompt", "store", "service_tier", "user",
                            "metadata", "draft_model", "adapters"})
# Set by a translator when the model may call tools the chat template does not list (tools a
# Messages conversation loaded or added mid-way; see translate/messages_tools.py): the complete
# list the extractor accepts. Never forwarded; part of the key (it changes what is extracted).
CALLABLE_TOOLS_FIELD = "mlx_proxy_callable_tools"
# Set by the proxy on every upstream call, never part of the key: the model identity in the key
# comes from Settings, and the stream shape does not change what is generated.
TRANSPORT_FIELDS = frozenset({"model", "stream", "stream_options"})
_NOT_IN_CANONICAL = DROPPED_FIELDS | TRANSPORT_FIELDS | frozenset(MAX_TOKENS_FIELDS)
# In the key, not in what is forwarded.
_NOT_FORWARDED = (CALLABLE_TOOLS_FIELD,)

# `n > 1` is refused, not served: choices would be generated apart, each cached apart, and most
# local servers ignore `n` (mlx_lm.server) or interleave the choices' chunks.
ONE_CHOICE = "n > 1 is not supported: the proxy serves one choice per request; send n requests instead"

# mlx_lm.server stops generating when a streaming client disconnects, but not a non-stream one;
# include_usage makes it send usage (without it, it also ends the stream without [DONE] when
# stream_options is present).
UPSTREAM_STREAM_OPTIONS = MappingProxyType({"include_usage": True})


@dataclass(frozen=True)
class NormalizeConfig:
    """What normalization needs from Settings, compiled once at start-up."""

    upstream_model: str
    default_max_tokens: int
    model_identity: str
    volatile_rules: VolatileRules = field(default_factory=lambda: VolatileRules(()))
    # The upstream's own limit on top_logprobs (mlx_lm.server: 11; the proxy's table allows
    # OpenAI's 20), so a request it would refuse gets the proxy's clear 400 instead.
    top_logprobs_max: int = 20
    # The served template drops tools: the proxy writes them into the prompt (tool_prompt.py).
    tool_prompt: bool = False
    # The served template's generation prompt opens a reasoning block (`<think>` pre-filled).
    opens_reasoning: bool = False
    sampling_defaults: Mapping[str, float | int] = field(default_factory=lambda: UPSTREAM_SAMPLING_DEFAULTS)

    def __post_init__(self) -> None:
        check_sampling_defaults(self.sampling_defaults)
        if self.default_max_tokens < 1:
            raise ValueError("default_max_tokens must be at least 1")

    @classmethod
    def from_settings(cls, s: Settings) -> "NormalizeConfig":
        return cls(upstream_model=s.upstream_model, default_max_tokens=s.default_max_tokens,
                   model_identity=model_identity(s.served_model, s.model_fingerprint),
                   volatile_rules=VolatileRules(s.volatile_rules),
                   sampling_defaults=sampling_defaults(s.sampling_defaults))


@dataclass(frozen=True)
class ChatRequest:
    """A normalized request (chat, or legacy completions with `tools=None`)."""

    upstream_body: dict  # POSTed upstream as is: stream true, stream_options.include_usage true
    key_material: dict  # the canonical request minus transport fields; what the key hashes
    client_stream: bool  # the client asked for a stream
    include_usage: bool  # the client's stream_options.include_usage
    tools: list[dict] | None  # declared tools (chat shape), for the tool-call extractor
    max_tokens: int
    rules_fired: tuple[str, ...]  # volatile rule patterns that matched; count with VolatileRules.count
    tool_prompt: bool = False  # the tools were written into the prompt (X-Tool-Prompt: injected)
    opens_reasoning: bool = False  # the answer starts inside a reasoning block
    subagent: bool = False  # a Claude Code subagent's request (the pool may steer it: proxy/pool)


def normalize_chat(body: dict, cfg: NormalizeConfig) -> ChatRequest:
    """A /v1/chat/completions body (or a translator's chat-shaped dict) → ChatRequest; 400 on bad input."""
    canonical, client_stream, include_usage, max_tokens = _canonical_common(body, cfg)
    subagent = claude_code_subagent(body.get("messages"))  # before the rules remove the billing line
    rewrite = cfg.volatile_rules.apply if cfg.volatile_rules else None
    messages, fired = canonical_messages(body.get("messages"), rewrite)
    canonical["messages"] = messages
    tools = canonical_tools(body.get("tools"))
    if tools is None:
        canonical.pop("tools", None)
    if CALLABLE_TOOLS_FIELD in body:
        tools = canonical_tools(body[CALLABLE_TOOLS_FIELD], CALLABLE_TOOLS_FIELD)
    # "auto" is the default whenever tools are declared: omitting it is the same request.
    if canonical.get("tool_choice") == "auto":
        del canonical["tool_choice"]
    return _request(canonical, cfg, client_stream, include_usage, tools, max_tokens, fired, subagent)


# Claude Code (2.1.x) marks a subagent's requests in its billing line: `... cc_is_subagent=true;`.
_SUBAGENT_MARK = re.compile(r"(?m)^x-anthropic-billing-header:[^\n]*\bcc_is_subagent=true\b")
# The billing line opens the system text; no need to read a 50 KB prompt further.
_BILLING_LINE_CHARS = 1024


def claude_code_subagent(messages: object) -> bool:
    """Whether the first system message's billing line says the request is a subagent's."""
    first = messages[0] if isinstance(messages, list) and messages else None
    if not isinstance(first, dict) or first.get("role") not in ("system", "developer"):
        return False
    content = first.get("content")
    if isinstance(content, list):  # text parts: the line is in the first
        content = next((p.get("text") for p in content if isinstance(p, dict)), None)
    return isinstance(content, str) and _SUBAGENT_MARK.search(content, 0, _BILLING_LINE_CHARS) is not None


def _canonical_common(body: object, cfg: NormalizeConfig) -> tuple[dict, bool, bool, int]:
    """The canonical dict without messages/tools, the client's stream choices, and max tokens."""
    if not isinstance(body, dict):
        raise invalid(f"request body must be a JSON object, not {type_name(body)}")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid(f"model must be a string, not {type_name(model)}", "model")
    client_stream = body.get("stream")
    if client_stream is None:
        client_stream = False
    elif not isinstance(client_stream, bool):
        raise invalid(f"stream must be a boolean, not {type_name(client_stream)}", "stream")
    include_usage = _include_usage(body.get("stream_options"))
    if isinstance(body.get("n"), int) and not isinstance(body["n"], bool) and body["n"] > 1:
        raise ProxyError("unsupported_content", ONE_CHOICE, param="n")
    canonical = {k: v for k, v in body.items() if k not in _NOT_IN_CANONICAL}
    max_tokens = canonical_max_tokens(body, cfg.default_max_tokens)
    canonical["max_tokens"] = max_tokens
    canonicalize_scalars(body, canonical, cfg.sampling_defaults)
    if canonical.get("top_logprobs", 0) > cfg.top_logprobs_max:
        raise invalid(f"top_logprobs must be at most {cfg.top_logprobs_max} for the served upstream", "top_logprobs")
    return canonical, client_stream, include_usage, max_tokens


def _include_usage(options: object) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise invalid(f"stream_options must be an object, not {type_name(options)}", "stream_options")
    include = options.get("include_usage")
    if include is None:
        return False
    if not isinstance(include, bool):
        raise invalid(f"stream_options.include_usage must be a boolean, not {type_name(include)}",
                      "stream_options.include_usage")
    return include


def _request(canonical: dict, cfg: NormalizeConfig, client_stream: bool, include_usage: bool,
             tools: list | None, max_tokens: int, fired: tuple[str, ...], subagent: bool = False) -> ChatRequest:
    forwarded = {k: v for k, v in canonical.items() if k not in _NOT_FORWARDED}
    tool_prompt = cfg.tool_prompt and bool(tools) and "messages" in forwarded
    if tool_prompt:  # the template would drop them: they go into the prompt instead
        forwarded["messages"] = with_tool_prompt(forwarded["messages"], tools)
        forwarded.pop("tools", None)
        forwarded.pop("tool_choice", None)
    upstream_body = {"model": cfg.upstream_model, **forwarded, "stream": True,
                     "stream_options": dict(UPSTREAM_STREAM_OPTIONS)}
    return ChatRequest(upstream_body=upstream_body, key_material=canonical, client_stream=client_stream,
                       include_usage=include_usage, tools=tools, max_tokens=max_tokens, rules_fired=fired,
                       tool_prompt=tool_prompt, opens_reasoning=cfg.opens_reasoning, subagent=subagent)
