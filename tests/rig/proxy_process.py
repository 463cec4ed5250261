"""The proxy as its own process (`python -m proxy`), as users run it: for what only a process
shows, its open-file limit, its memory, its log."""
from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from launcher.cli import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
LIVE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def raw_request(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


class ProxyProcess:
    def __init__(self, log: Path, *args: str, nofile: int | None = None, root: Path = ROOT) -> None:
        self.port = free_port()
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLX_PROXY_")}
        argv = [sys.executable, "-m", "proxy", "--port", str(self.port), *args]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=_file_limit(nofile) if nofile else None)
        self._wait_live()

    def _wait_live(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the proxy exited: {self.log.read_text()[-2000:]}")
            try:
                if raw_request(self.port, LIVE, timeout=1).startswith(b"HTTP/1.1 200"):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the proxy never came up")

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak so far) of the proxy process, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _file_limit(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    return apply
