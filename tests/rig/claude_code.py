"""Real Claude Code from the npm registry, run headless (`claude -p`) and offline against a proxy.

    run = ClaudeCode("2.1.332").run(proxy_url, "Say hello", home=tmp_path)
    run.exit_code, run.result, run.output

Each pinned version is installed once per machine under the model cache
(`npm install @anthropic-ai/claude-code@VERSION`; 2.1 ships a native binary of ~400 MB), into a
temporary folder renamed into place, so a failed or concurrent install never leaves half a
package. The run follows the offline recipe that works: a HOME of the test's own, telemetry and
auto-update off, every non-local address sent to a dead proxy so it fails at once instead of
hanging, stdin closed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from launcher.tiny_model import build_once, cache_root

# The newest of each line the registry serves (2026-12-01): 2.0 has no mid-conversation system
# messages; 2.1 sends them, `?beta=true`, thinking/context_management/output_config, deferred tools.
PINNED_VERSIONS = ("2.0.77", "2.1.332")
PACKAGE = "@anthropic-ai/claude-code"
INSTALL_TIMEOUT = 900.0
RUN_TIMEOUT = 180.0
# Any name works through the proxy; this one Claude Code 2.1 knows (no unrecognized_model
# warning, a 200k context window), the README's recommendation.
MODEL = "claude-sonnet-4-5"
# An address where nothing listens: anything Claude Code tries beyond loopback fails at once.
DEAD_PROXY = "http://127.0.0.1:9"


@dataclass(frozen=True)
class ClaudeRun:
    exit_code: int
    output: dict  # the `--output-format json` result object ({} if none was printed)
    stderr: str

    @property
    def result(self) -> str:
        return str(self.output.get("result", ""))


class ClaudeCode:
    def __init__(self, version: str) -> None:
        self.version = version
        self.binary = _installed(version)

    def run(self, base_url: str, prompt: str, home: Path, workdir: Path | None = None, model: str = MODEL,
            allowed_tools: tuple[str, ...] = ()) -> ClaudeRun:
        workdir = workdir or home / "work"
        workdir.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_AUTH_TOKEN": "mlx-proxy",
               "ANTHROPIC_MODEL": model, "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "ANTHROPIC_SMALL_FAST_MODEL": model,
               "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
               "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "NO_PROXY": "127.0.0.1,localhost"}
        args = [str(self.binary), "-p", prompt, "--output-format", "json"]
        if allowed_tools:
            args += ["--allowedTools", ",".join(allowed_tools)]
        done = subprocess.run(args, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=RUN_TIMEOUT)
        try:
            output = json.loads(done.stdout) if done.stdout.strip() else {}
        except json.JSONDecodeError:
            output = {"unparsed": done.stdout}
        return ClaudeRun(done.returncode, output if isinstance(output, dict) else {}, done.stderr)


def _installed(version: str) -> Path:
    target = cache_root() / "claude-code" / version

    def install(tmp: Path) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed to install Claude Code for the tests (install Node.js)")
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(tmp),
                        f"{PACKAGE}@{version}"], check=True, timeout=INSTALL_TIMEOUT,
                       stdin=subprocess.DEVNULL, capture_output=True)

    binary = build_once(target, install) / "node_modules" / ".bin" / "claude"
    if not binary.exists():
        raise RuntimeError(f"Claude Code {version} installed without its binary at {binary}")
    return binary
