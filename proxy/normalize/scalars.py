"""Top-level request fields other than messages and tools: numbers, max tokens, stop, logit_bias.

Two jobs: make equivalent requests identical (omitted sampling parameters become the upstream's
defaults, `1` and `1.0` become the same float, `stop: "x"` and `stop: ["x"]` one list, the three
max-token names one `max_tokens`), and reject what mlx_lm.server would reject anyway, but with an
OpenAI-shaped 400 naming the parameter instead of its bare `{"error": ...}`.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import ProxyError, invalid
from .body import type_name

# The upstream's sampling defaults: mlx_lm.server 0.32's CLI defaults (--temp 0.0, --top-p 1.0,
# --top-k 0, --min-p 0.0) and the literals in its request parser. Sent explicitly, so an omitted
# parameter and its explicit default are one request, and what we hash is what runs.
UPSTREAM_SAMPLING_DEFAULTS: Mapping[str, float | int] = MappingProxyType({
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repetition_penalty": 0.0,
    "repetition_context_size": 20,
    "presence_penalty": 0.0,
    "presence_context_size": 20,
    "frequency_penalty": 0.0,
    "frequency_context_size": 20,
    "xtc_probability": 0.0,
    "xtc_threshold": 0.1,
})

# mlx_lm.server flags that set a sampling default → the request field they stand for.
SERVER_SAMPLING_FLAGS: Mapping[str, str] = MappingProxyType(
    {"--temp": "temperature", "--top-p": "top_p", "--top-k": "top_k", "--min-p": "min_p"})

# Accepted max-token names, in the upstream's order of precedence (it reads
# max_completion_tokens first); max_output_tokens comes from the /v1/responses translator.
MAX_TOKENS_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")

# orjson (and the upstream's int parameters) stop at 64-bit integers.
_INT_LIMIT = 2**63 - 1


@dataclass(frozen=True)
class NumberSpec:
    is_float: bool
    lo: float | None = None
    hi: float | None = None

    def canonical(self, value: object, param: str) -> float | int:
        """`value` as this field's canonical number (floats as float, -0.0 as 0.0), or a 400."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(f"{param} must be a number, not {type_name(value)}", param)
        if self.is_float:
            try:
                number: float | int = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
            except OverflowError:
                raise invalid(f"{param} is out of range", param) from None
            if not math.isfinite(number):
                raise invalid(f"{param} must be finite", param)
        else:
            if isinstance(value, float) and not value.is_integer():
                raise invalid(f"{param} must be an integer", param)
            if isinstance(value, float) and not math.isfinite(value):
                raise invalid(f"{param} must be finite", param)
            number = int(value)
            if abs(number) > _INT_LIMIT:
                raise invalid(f"{param} is out of range", param)
        if self.lo is not None and number < self.lo:
            raise invalid(f"{param} must be at least {self.lo}", param)
        if self.hi is not None and number > self.hi:
            raise invalid(f"{param} must be at most {self.hi}", param)
        return number


# Ranges as mlx_lm.server validates them (validate_model_parameters).
NUMBER_FIELDS: Mapping[str, NumberSpec] = {
    "temperature": NumberSpec(True, 0),
    "top_p": NumberSpec(True, 0, 1),
    "top_k": NumberSpec(False, 0),
    "min_p": NumberSpec(True, 0, 1),
    "repetition_penalty": NumberSpec(True, 0),
    "repetition_context_size": NumberSpec(False, 0),
    "presence_penalty": NumberSpec(True),
    "presence_context_size": NumberSpec(False, 0),
    "frequency_penalty": NumberSpec(True),
    "frequency_context_size": NumberSpec(False, 0),
    "xtc_probability": NumberSpec(True, 0, 1),
    "xtc_threshold": NumberSpec(True, 0, 1),
    "seed": NumberSpec(False),
    # -1 is mlx_lm.server's "off"; 20 is OpenAI's maximum (an upstream may allow fewer:
    # NormalizeConfig.top_logprobs_max)
    "top_logprobs": NumberSpec(False, -1, 20),
    "num_draft_tokens": NumberSpec(False, 0),
    "n": NumberSpec(False, 1, 1),  # one choice per request (see ONE_CHOICE in request.py)
}
_MAX_TOKENS_SPEC = NumberSpec(False, 1)

_JSON_TYPE_NAMES = {bool: "a boolean", str: "a string", dict: "an object"}

# Known fields that must be of one JSON type when present (null means absent).
_TYPED_FIELDS: Mapping[str, tuple[type, ...]] = {
    "logprobs": (bool,),
    "tool_choice": (str, dict),
    "response_format": (dict,),
    "chat_template_kwargs": (dict,),
}


def sampling_defaults(overrides: Iterable[str]) -> Mapping[str, float | int]:
    """The upstream's defaults with `name=value` overrides (Settings.sampling_defaults) applied.

    Start-up code: a bad override is a ValueError naming it.
    """
    out = dict(UPSTREAM_SAMPLING_DEFAULTS)
    for item in overrides:
        name, _, raw = (part.strip() for part in item.partition("="))
        if name not in UPSTREAM_SAMPLING_DEFAULTS:
            raise ValueError(f"sampling default {item!r}: expected name=value with a name among "
                             f"{', '.join(UPSTREAM_SAMPLING_DEFAULTS)}")
        try:
            out[name] = NUMBER_FIELDS[name].canonical(float(raw), name)
        except (ValueError, ProxyError) as exc:
            raise ValueError(f"sampling default {item!r}: {exc}") from None
    return MappingProxyType(out)


def sampling_defaults_from_server_args(args: Sequence[str]) -> tuple[str, ...]:
    """`name=value` items for the sampling flags among mlx_lm.server arguments, for the launcher.

    Both `--temp 0.7` and `--temp=0.7` spellings; later flags win, as in argparse.
    """
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in SERVER_SAMPLING_FLAGS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
            found[SERVER_SAMPLING_FLAGS[flag]] = value
    return tuple(f"{name}={value}" for name, value in found.items())


def check_sampling_defaults(defaults: Mapping[str, float | int]) -> None:
    """Start-up check: configured defaults are valid and already canonical."""
    for name, value in defaults.items():
        spec = NUMBER_FIELDS.get(name)
        canonical_type = float if spec is not None and spec.is_float else int
        if spec is None or spec.canonical(value, name) != value or type(value) is not canonical_type:
            raise ValueError(f"sampling default {name}={value!r} is not a canonical {name}")


def canonical_max_tokens(body: Mapping, default: int) -> int:
    """The one max-token value: the first name present, else the configured default."""
    for name in MAX_TOKENS_FIELDS:
        value = body.get(name)
        if value is not None:
            return int(_MAX_TOKENS_SPEC.canonical(value, name))
    return default


def canonicalize_scalars(body: Mapping, out: dict, defaults: Mapping[str, float | int]) -> None:
    """Write the canonical form of `body`'s scalar fields into `out` (a shallow copy of `body`).

    Null means absent everywhere, so `seed: null` and no seed are one request.
    """
    for name, spec in NUMBER_FIELDS.items():
        value = body.get(name)
        if value is not None:
            out[name] = spec.canonical(value, name)
        elif name in defaults:
            out[name] = defaults[name]
        else:
            out.pop(name, None)
    for name, types in _TYPED_FIELDS.items():
        value = body.get(name)
        if value is None:
            out.pop(name, None)
        elif not isinstance(value, types):
            names = " or ".join(_JSON_TYPE_NAMES[t] for t in types)
            raise invalid(f"{name} must be {names}, not {type_name(value)}", name)
    _put(out, "stop", _canonical_stop(body.get("stop")))
    _put(out, "logit_bias", _canonical_logit_bias(body.get("logit_bias")))


def _put(out: dict, name: str, value: object) -> None:
    if value is None:
        out.pop(name, None)
    else:
        out[name] = value


def _canonical_stop(stop: object) -> list[str] | None:
    """A non-empty list of stop strings, or None (the upstream treats "", [] and null alike)."""
    if stop is None or stop == "" or stop == []:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        for i, item in enumerate(stop):
            if not isinstance(item, str):
                raise invalid(f"stop[{i}] must be a string, not {type_name(item)}", "stop")
        return stop
    raise invalid(f"stop must be a string or an array of strings, not {type_name(stop)}", "stop")


def _canonical_logit_bias(bias: object) -> dict[str, float] | None:
    """Token id → bias with canonical keys ("007" is token 7) and float values; {} is no bias."""
    if bias is None or bias == {}:
        return None
    if not isinstance(bias, dict):
        raise invalid(f"logit_bias must be an object, not {type_name(bias)}", "logit_bias")
    out: dict[str, float] = {}
    for token, value in bias.items():
        try:
            token_id = int(token)
        except ValueError:
            raise invalid(f"logit_bias key {token!r} is not a token id", "logit_bias") from None
        if abs(token_id) > _INT_LIMIT:
            raise invalid(f"logit_bias key {token!r} is out of range", "logit_bias")
        out[str(token_id)] = float(NumberSpec(True).canonical(value, "logit_bias"))
    return out
