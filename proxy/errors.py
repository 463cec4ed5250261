"""Errors the proxy answers with: one exception type, one table of stable codes.

Every failure a client can see is a `ProxyError` carrying a stable `code`; the table below maps
the code to HTTP status and error type once. Bodies are rendered in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` or Anthropic's
`{"type": "error", "error": {"type", "message"}}` depending on the route (`error_body`).
"""
from __future__ import annotations

from dataclasses import dataclass

# code -> (HTTP status, OpenAI error type, Anthropic error type)
ERROR_TABLE: dict[str, tuple[int, str, str]] = {
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "invalid_json": (400, "invalid_request_error", "invalid_request_error"),
    "invalid_encoding": (400, "invalid_request_error", "invalid_request_error"),
    "unsupported_content": (400, "invalid_request_error", "invalid_request_error"),
    "unauthorized": (401, "authentication_error", "authentication_error"),
    "forbidden": (403, "permission_error", "permission_error"),
    "not_found": (404, "invalid_request_error", "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error", "invalid_request_error"),
    "request_timeout": (408, "invalid_request_error", "timeout_error"),
    "request_too_large": (413, "invalid_request_error", "request_too_large"),
    "unsupported_media_type": (415, "invalid_request_error", "invalid_request_error"),
    "upstream_rejected": (400, "invalid_request_error", "invalid_request_error"),
    "context_length_exceeded": (400, "invalid_request_error", "invalid_request_error"),
    "upstream_error": (502, "upstream_error", "api_error"),
    "upstream_unreachable": (502, "upstream_error", "api_error"),
    "upstream_bad_response": (502, "upstream_error", "api_error"),
    "upstream_unavailable": (503, "upstream_error", "overloaded_error"),
    "queue_full": (503, "server_error", "overloaded_error"),
    "upstream_restarting": (503, "upstream_error", "overloaded_error"),
    "upstream_timeout": (504, "timeout_error", "timeout_error"),
    "internal_error": (500, "server_error", "api_error"),
}

# Deterministic failures: retrying the same request cannot help (the SDKs and Claude Code retry
# 5xx, 408, 409 and 429 on their own unless told not to).
_NO_RETRY_STATUSES = {400, 401, 403, 404, 405, 413, 415}


@dataclass
class ProxyError(Exception):
    code: str
    message: str
    param: str | None = None
    retry_after: int | None = None  # seconds, sent as an integer Retry-After header

    def __post_init__(self) -> None:
        if self.code not in ERROR_TABLE:
            raise ValueError(f"unknown error code {self.code!r}")
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return ERROR_TABLE[self.code][0]

    @property
    def should_retry(self) -> bool:
        return self.status not in _NO_RETRY_STATUSES

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.retry_after is not None:
            h["Retry-After"] = str(int(self.retry_after))
        if not self.should_retry:
            h["x-should-retry"] = "false"
        if self.status == 401:
            h["WWW-Authenticate"] = "Bearer"  # RFC 9110: a 401 names the scheme it wants
        return h

    def openai_body(self) -> dict:
        return {"error": {"message": self.message, "type": ERROR_TABLE[self.code][1],
                          "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict:
        return {"type": "error", "error": {"type": ERROR_TABLE[self.code][2], "message": self.message}}


# Where errors are answered in Anthropic's shape: the Messages API and everything under it
# (forwarded ones too, such as /v1/messages/batches), since Anthropic's clients call them.
ANTHROPIC_PATHS = ("/v1/messages",)


def error_body(path: str, err: ProxyError) -> dict:
    """The one rule for an error's shape: by the request's path, for every route and every
    error (a handler's, a middleware's, the HTTP parser's, one written into a stream)."""
    anthropic = any(path == p or path.startswith(p + "/") for p in ANTHROPIC_PATHS)
    return err.anthropic_body() if anthropic else err.openai_body()


def invalid(message: str, param: str | None = None) -> ProxyError:
    """The common 400: a request field is missing or of the wrong type."""
    return ProxyError("invalid_request", message, param=param)
