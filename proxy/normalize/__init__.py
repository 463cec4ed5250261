"""Request normalization: raw bytes → the canonical request that is forwarded AND hashed.

Pure (no I/O, no counters touched): `parse_body`, `normalize_chat`.
Volatile-rule hits are returned in `ChatRequest.rules_fired`; the caller counts them with
`NormalizeConfig.volatile_rules.count(...)` and shows `volatile_rules.to_json()` in /health.
"""
from .body import parse_body
from .request import CALLABLE_TOOLS_FIELD, DROPPED_FIELDS, TRANSPORT_FIELDS, ChatRequest, NormalizeConfig, normalize_chat
from .rules import VolatileRules
from .scalars import UPSTREAM_SAMPLING_DEFAULTS, sampling_defaults_from_server_args

__all__ = ["parse_body", "NormalizeConfig", "ChatRequest", "normalize_chat", "VolatileRules",
           "CALLABLE_TOOLS_FIELD", "DROPPED_FIELDS", "TRANSPORT_FIELDS", "UPSTREAM_SAMPLING_DEFAULTS",
           "sampling_defaults_from_server_args"]
