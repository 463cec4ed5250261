"""What a request must look like before any route sees it: a canonical path, and, on a proxy
that answers without keys, a loopback Host and no cross-site origin.

Why each rule:
  * Dot segments (`/v1/./chat/completions`, `/x/../v1/...`, `%2e%2e`), empty segments and
    encoded slashes do not match the routes as written, fall through to passthrough, and the
    upstream (or a client library on the way) normalizes them into a route the proxy owns:
    the request would reach mlx_lm.server with nothing pinned, normalized, cached or queued.
    So the path must already be in its one canonical form (a 400 otherwise), for every route.
  * Without keys the proxy trusts whoever can reach loopback, and a web page in the user's
    browser can reach loopback: a "simple" cross-site request (text/plain, form encoding)
    needs no CORS preflight, and a DNS-rebinding page sends its own Host. So without keys:
    the Host must name loopback, an Origin (browsers send it on every cross-origin POST) must
    be loopback too, `Sec-Fetch-Site: cross-site` is refused, and a body a browser can send
    without a preflight (text/plain, form encodings) is refused on every route.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from ..errors import ProxyError
from .auth import is_loopback

# Segments that change meaning once a server normalizes the path; percent-encoded dots and
# slashes; backslashes (some servers treat them as slashes).
_NON_CANONICAL = re.compile(r"(?:^|/)(?:\.|%2e){1,2}(?:/|$)|//|%2f|%5c|\\", re.I)
# Content types a browser sends cross-site without asking first (the CORS "simple" ones).
SIMPLE_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})

def path_problem(raw_path: str) -> str | None:
    """Why a raw request path is not canonical, or None."""
    path = raw_path.split("?", 1)[0]
    if _NON_CANONICAL.search(path):
        return "the request path has dot segments, empty segments or encoded separators"
    return None


def _host_of(value: str) -> str:
    """The host part of a Host header (`[::1]:8081`, `localhost:8081`)."""
    return urlsplit("//" + value).hostname or ""


def cross_site_problem(headers) -> str | None:
    """Why a request to a key-less proxy looks like it came from a web page, or None."""
    host = headers.get("Host", "")
    if host and not is_loopback(_host_of(host)):
        return f"the Host header must name this machine's loopback address (got {host!r})"
    origin = headers.get("Origin")
    if origin is not None and origin != "null" and not is_loopback(urlsplit(origin).hostname or ""):
        return "requests from web pages of other sites are refused"
    if origin == "null" or headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        return "requests from web pages of other sites are refused"
    ctype = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if ctype in SIMPLE_CONTENT_TYPES:
        return f"send the body as Content-Type: application/json (got {ctype})"
    return None


def guard_requests(keyless_loopback: bool) -> Callable:
    """Middleware: the rules above (cross-site ones only for a loopback proxy without keys);
    refusals are raised, for the errors middleware to render in the route's shape."""

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        problem = path_problem(request.raw_path)
        if problem is not None:
            raise ProxyError("invalid_request", problem)
        if keyless_loopback:
            problem = cross_site_problem(request.headers)
            if problem is not None:
                code = "unsupported_media_type" if problem.startswith("send the body") else "forbidden"
                raise ProxyError(code, problem)
        return await handler(request)

    return middleware
