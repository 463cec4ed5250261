"""API keys: who may use a proxy that listens beyond loopback, and their cache namespaces.

Why: the proxy holds prompts and a cache shared by a team; on a network address anyone could
read cached answers or flush them. So binding anything but loopback needs keys (or an explicit
`--insecure-no-auth`), and with keys configured every route needs one except the probes that
reveal nothing (`/health/live`, and `GET`/`HEAD /`, which answer a constant "ok" and which
Claude Code calls before it starts).

A key is `KEY` or `KEY:namespace`. A plain key is fully trusted: any namespace header, the
cache administration routes. A namespaced key is a tenant: its requests are cached apart from
everyone else's (its namespace joins the cache key exactly like an `X-Cache-Namespace` header;
a header the client sends as well is nested inside: `namespace.header`), so it never reads
another tenant's entries, and it may not delete or flush entries (403). Keys are compared in
constant time (hmac.compare_digest) and never logged.
"""
from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from ..errors import ProxyError

# Key namespaces cannot contain '.', the separator between a key's namespace and a client's
# X-Cache-Namespace inside it: "team" + "proj" -> "team.proj" never equals another key's own.
KEY_NAMESPACE_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Shortest key accepted: a guessable key on a network address is no key.
MIN_KEY_CHARS = 16
# Answered without a key: constant answers that reveal nothing (method, path).
OPEN_ROUTES = frozenset({("GET", "/health/live"), ("HEAD", "/health/live"), ("GET", "/"), ("HEAD", "/")})
NAMESPACE_HEADER = "X-Cache-Namespace"
# Where clients put the key (OpenAI SDKs: Authorization; Anthropic SDKs: x-api-key).
KEY_HEADERS = ("Authorization", "x-api-key")
# Cache administration (stats, delete, flush): plain keys only.
ADMIN_PREFIX = "/cache/"


class AuthConfigError(ValueError):
    """A key or the bind address makes the configuration unsafe or unusable."""


@dataclass(frozen=True)
class ApiKey:
    secret: bytes = field(repr=False)  # never in a log line or a traceback
    namespace: str = ""


def parse_api_key(spec: str) -> ApiKey:
    """`KEY` or `KEY:namespace`."""
    secret, sep, namespace = spec.strip().rpartition(":")
    if not sep:
        secret, namespace = namespace, ""
    elif not KEY_NAMESPACE_PATTERN.fullmatch(namespace):
        raise AuthConfigError(f"api key namespace must be 1-32 characters of A-Z a-z 0-9 _ - "
                              f"(got {namespace!r})")
    if len(secret) < MIN_KEY_CHARS:
        raise AuthConfigError(f"api keys must be at least {MIN_KEY_CHARS} characters long")
    return ApiKey(secret.encode(), namespace)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or "" (all interfaces): treat as exposed


def check_exposure(host: str, api_keys: Iterable[str], insecure_no_auth: bool) -> tuple[ApiKey, ...]:
    """The parsed keys; refuse a non-loopback bind without keys unless explicitly insecure."""
    keys = tuple(parse_api_key(k) for k in api_keys)
    if not keys and not insecure_no_auth and not is_loopback(host):
        raise AuthConfigError(
            f"refusing to listen on {host!r} without an API key: anyone on the network could use the "
            f"model and read or flush the cache. Give --api-key (or MLX_PROXY_API_KEYS), or "
            f"--insecure-no-auth to run open on purpose")
    return keys


def presented_key(headers) -> str | None:
    """`Authorization: Bearer KEY` (OpenAI clients) or `x-api-key: KEY` (Anthropic clients)."""
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key") or None


def match_key(presented: str | None, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """The configured key equal to `presented`; every key is compared (constant time)."""
    if presented is None:
        return None
    given = presented.encode("utf-8", "surrogateescape")  # a header of invalid UTF-8 is just a wrong key
    found = None
    for key in keys:
        if hmac.compare_digest(given, key.secret):
            found = key
    return found


def _as_seen_inside(request: web.Request, namespace: str) -> web.Request:
    """The request the handlers see: without the proxy's key (passthrough forwards headers, and
    the upstream must never learn it) and with the key's cache namespace, if any."""
    headers = request.headers.copy()
    for name in KEY_HEADERS:
        headers.popall(name, None)
    if namespace:
        client = request.headers.get(NAMESPACE_HEADER)
        headers[NAMESPACE_HEADER] = f"{namespace}.{client}" if client else namespace
    return request.clone(headers=headers)


def require_api_key(keys: tuple[ApiKey, ...]) -> Callable:
    """Middleware (inside the errors middleware, which renders its refusals): 401 without a
    valid key (except OPEN_ROUTES); the key never goes further than this; a namespaced key's
    requests carry its cache namespace."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        if (request.method, request.path) in OPEN_ROUTES:
            return await handler(request)
        presented = presented_key(request.headers)
        key = match_key(presented, keys)
        if key is None:
            why = "missing API key" if presented is None else "invalid API key"
            raise ProxyError("unauthorized", f"{why}: send it as 'Authorization: Bearer KEY' or 'x-api-key: KEY'")
        if key.namespace and request.path.startswith(ADMIN_PREFIX):
            raise ProxyError("forbidden", "this API key is scoped to a cache namespace; cache administration "
                             "needs an unscoped key")
        inside = _as_seen_inside(request, key.namespace)
        try:
            return await handler(inside)
        finally:
            request.update(inside)  # what the handler noted (cache status) for the outer logs

    return middleware
