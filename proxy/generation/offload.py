"""Work on a request body that is too big for the event loop goes to a worker thread."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

# Bodies above this are parsed (and normalized) in a worker thread, so liveness and every
# other client's stream never wait on them: a 15 MB body is ~0.1-1 s of CPU.
OFF_LOOP_BYTES = 256 * 1024

T = TypeVar("T")


async def off_loop_if_big(raw: bytes | bytearray, work: Callable[..., T], *args) -> T:
    """`work(*args)` for the body `raw`: here if it is small, in a worker thread if it is big."""
    if len(raw) > OFF_LOOP_BYTES:
        return await asyncio.to_thread(work, *args)
    return work(*args)
