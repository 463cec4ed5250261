"""OpenAI Responses and Anthropic Messages endpoints, served through the chat pipeline."""
from __future__ import annotations

from aiohttp import web

from ..generation.offload import off_loop_if_big
from ..normalize import NormalizeConfig, normalize_chat, parse_body
from ..translate import messages, responses
from ..translate.base import ClientProtocol
from .body import read_body
from .serve import serve_protocol
from .state import STATE_KEY, AppState

RESPONSES = ClientProtocol(name="responses", to_chat=responses.to_chat, render_json=responses.render_json,
                           stream_renderer=responses.ResponsesStreamRenderer, id_prefix="resp_",
                           renders_request=True)
MESSAGES = ClientProtocol(name="messages", to_chat=messages.to_chat, render_json=messages.render_json,
                          stream_renderer=messages.MessagesStreamRenderer, id_prefix="msg_",
                          passes_comments=False, renders_request=True, announces_prompt_tokens=True)


async def create_response(request: web.Request) -> web.StreamResponse:
    return await serve_protocol(request, RESPONSES)


async def create_message(request: web.Request) -> web.StreamResponse:
    return await serve_protocol(request, MESSAGES)


async def count_tokens(request: web.Request) -> web.Response:
    """Anthropic's count_tokens: the served model's tokenizer when the proxy can load it,
    otherwise an estimate; `X-Token-Count` says which. The prompt counted is the one a
    generation would send upstream (normalized: volatile lines removed, defaults set)."""
    state: AppState = request.app[STATE_KEY]
    raw = await read_body(request)
    prompt = await off_loop_if_big(raw, _prompt_to_count, raw, state.normalize_config)
    count, how = await state.tokens.count(prompt)
    return web.json_response({"input_tokens": count}, headers={"X-Token-Count": how})


def _prompt_to_count(raw: bytes | bytearray, config: NormalizeConfig) -> dict:
    return normalize_chat(messages.to_chat(parse_body(raw)), config).upstream_body


async def root(request: web.Request) -> web.Response:
    """Claude Code probes `HEAD /` and `GET /` before it starts; answer here, never upstream."""
    return web.json_response({"status": "ok", "service": "mlx-proxy"})
