"""OpenAI-compatible endpoints: chat completions (the full pipeline), completions, models."""
from __future__ import annotations

import time

import orjson
from aiohttp import web

from ..translate import chat
from ..translate.base import ClientProtocol
from .body import read_json
from .passthrough import forward
from .serve import serve_protocol
from .state import STATE_KEY, AppState

CHAT = ClientProtocol(name="chat", to_chat=None, render_json=chat.render_json,
                      stream_renderer=chat.ChatStreamRenderer, id_prefix="chatcmpl-")


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await serve_protocol(request, CHAT)


async def completions(request: web.Request) -> web.StreamResponse:
    """Legacy text completions: forwarded as they stream, with the model pinned to the served one
    (any other name makes mlx_lm.server unload its model)."""
    state: AppState = request.app[STATE_KEY]
    body = await read_json(request)
    body["model"] = state.settings.upstream_model
    return await forward(request, "/v1/completions", orjson.dumps(body), counts_tokens=True)


def model_list(state: AppState) -> list[dict]:
    created = int(time.time())
    names = (state.settings.served_model, *state.settings.model_aliases)
    return [{"id": name, "object": "model", "created": created, "owned_by": "mlx-proxy"} for name in names]


async def models(request: web.Request) -> web.Response:
    """The served model and its aliases, so clients that look a model up find it."""
    state: AppState = request.app[STATE_KEY]
    return web.json_response({"object": "list", "data": model_list(state)})
