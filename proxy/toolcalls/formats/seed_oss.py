"""ByteDance Seed-OSS calls: Qwen3-Coder's XML inside `<seed:tool_call>...</seed:tool_call>`."""
from .qwen3_xml import parse as parse  # noqa: PLC0414 - same body, different wrapper

START, END = "<seed:tool_call>", "</seed:tool_call>"
