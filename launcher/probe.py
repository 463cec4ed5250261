"""The one health probe the launcher has: a real 1-token completion, which only a server that
has loaded its model and still generates can answer (mlx_lm.server's /health answers before
the model loads and while it is wedged). Used to see the first load through and by the wedge
watchdog."""
from __future__ import annotations

import asyncio

import aiohttp

PROBE_BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
NOTHING_LISTENS = 0  # nothing accepted the connection (yet)
NO_ANSWER = -1  # connected, but no complete answer in time: still loading, or wedged


async def probe_completion(session: aiohttp.ClientSession, url: str, timeout: float) -> int:
    """The HTTP status of one 1-token completion from the server at `url`, or NOTHING_LISTENS
    or NO_ANSWER."""
    try:
        async with session.post(url + "/v1/chat/completions", json=PROBE_BODY,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientConnectorError:
        return NOTHING_LISTENS
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return NO_ANSWER
