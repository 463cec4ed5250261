"""Tool calls that local models write as text, found and turned into structured calls.

Streaming (one scanner per response)::

    scanner = ToolCallScanner(request_tools)       # None / [] -> text passes straight through
    for text in upstream_content_deltas:
        events += scanner.feed(text)                # TextDelta / ToolCallDelta, in order
    tail, finish_reason = scanner.finish(upstream_finish_reason)

Whole message: `extract(text, tools, finish_reason)` -> (content | None, calls, finish_reason),
the same result as the scanner by construction. The upstream's own structured calls go through
`normalize_upstream_calls`. Formats are files in `formats/`, listed in `registry`.
"""
from .extract import extract, normalize_upstream_calls
from .scanner import MAX_HELD_CHARS, ToolCallScanner, new_call_id

__all__ = ["MAX_HELD_CHARS", "ToolCallScanner", "extract", "new_call_id", "normalize_upstream_calls"]
