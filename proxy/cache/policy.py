"""Per-request cache controls from request headers (pure).

`Cache-Control: no-cache` skips the read but stores the result, `no-store` never writes,
`max-age=N` accepts only entries younger than N seconds; `X-Cache-TTL: N` shortens the entry's
lifetime (never beyond the operator's --cache-ttl) and `X-Cache-Namespace: name` keeps a team's or a project's entries apart.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import invalid
from .keys import check_namespace


@dataclass(frozen=True)
class CacheControl:
    read: bool = True
    write: bool = True
    max_age: float | None = None
    ttl: int | None = None
    namespace: str = ""

    @property
    def accepts_any_entry(self) -> bool:
        return self.read and self.max_age is None

    @property
    def status_without_read(self) -> str:
        """X-Cache-Status when the read is skipped: REFRESH if we still store, else BYPASS."""
        return "REFRESH" if self.write else "BYPASS"


def parse_cache_control(headers: Mapping[str, str]) -> CacheControl:
    read, write, max_age = True, True, None
    for directive in headers.get("Cache-Control", "").split(","):
        name, _, value = directive.strip().lower().partition("=")
        if name == "no-cache":
            read = False
        elif name == "no-store":
            write = False
        elif name == "max-age":
            try:
                max_age = max(0.0, float(value.strip().strip('"')))
            except ValueError:
                raise invalid(f"Cache-Control max-age must be a number, got {value!r}", "Cache-Control") from None
    ttl = None
    raw_ttl = headers.get("X-Cache-TTL")
    if raw_ttl is not None:
        try:
            ttl = int(raw_ttl)
        except ValueError:
            ttl = -1
        if ttl <= 0:
            raise invalid(f"X-Cache-TTL must be a positive integer, got {raw_ttl!r}", "X-Cache-TTL")
    namespace = headers.get("X-Cache-Namespace", "")
    if namespace:
        check_namespace(namespace)
    return CacheControl(read=read, write=write, max_age=max_age, ttl=ttl, namespace=namespace)
