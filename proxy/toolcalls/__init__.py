"""Tool calls that local models write as text, found and turned into structured calls.

`ToolCallScanner` (streaming) and `extract` (whole message) give the same result for the same
text; formats are files in `formats/`, listed in `registry`.
"""
from .extract import extract, normalize_upstream_calls
from .scanner import MAX_HELD_CHARS, ToolCallScanner, new_call_id

__all__ = ["MAX_HELD_CHARS", "ToolCallScanner", "extract", "new_call_id", "normalize_upstream_calls"]
