"""The launcher's pure decisions: output classification, backoff, arguments, environment."""
from __future__ import annotations

import json

import pytest

from launcher.cli import build_parser, split_server_args
from launcher.cli import main as launcher_main
from launcher.policy import (LineKind, backoff_delay, child_env, classify_line, retry_after_seconds,
                             server_args, waiting_for)

# Lines as mlx_lm.server 0.32 prints them (captured from real runs).
PORT_IN_USE = "OSError: [Errno 98] Address already in use"
PORT_IN_USE_MAC = "OSError: [Errno 48] Address already in use"
LOAD_FAILED = ("2026-11-25 17:25:30,249 - ERROR - mlx_lm.server generation thread died: "
               "Repo id must use alphanumeric chars: '/nonexistent'.")
LISTENING = "2026-11-25 17:25:30,250 - INFO - Starting httpd at 127.0.0.1 on port 18777..."


@pytest.mark.parametrize("line", [PORT_IN_USE, PORT_IN_USE_MAC])
def test_port_in_use_is_fatal(line):
    verdict = classify_line(line)
    assert verdict.kind is LineKind.FATAL
    assert "port" in verdict.reason and "in use" in verdict.reason


def test_dead_generation_thread_is_fatal_with_its_cause():
    verdict = classify_line(LOAD_FAILED)
    assert verdict.kind is LineKind.FATAL
    assert verdict.reason.startswith("the model failed to load")
    assert "/nonexistent" in verdict.reason


def test_fatal_reason_is_bounded():
    verdict = classify_line("mlx_lm.server generation thread died: " + "x" * 10_000)
    assert verdict.kind is LineKind.FATAL and len(verdict.reason) <= 300


@pytest.mark.parametrize("line, kind", [
    (LISTENING, LineKind.LISTENING),
    ("Fetching 9 files:  11%|#1        | 1/9", LineKind.DOWNLOADING),
    ('127.0.0.1 - - [25/Nov/2026 17:29:19] "POST /v1/chat/completions HTTP/1.1" 200 -', LineKind.OTHER),
    ("2026-11-25 - INFO - Prompt processing progress: 10/11", LineKind.OTHER),
    ("", LineKind.OTHER),
])
def test_non_fatal_lines(line, kind):
    assert classify_line(line).kind is kind


def test_waiting_for_describes_the_stage():
    assert "process" in waiting_for(listening=False, downloading=False, connected=False)
    assert "download" in waiting_for(listening=False, downloading=True, connected=False)
    assert "load" in waiting_for(listening=True, downloading=False, connected=False)
    assert "load" in waiting_for(listening=False, downloading=True, connected=True)


def test_backoff_doubles_from_initial_and_is_capped():
    delays = [backoff_delay(n, 1.0, 30.0) for n in range(1, 9)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_delay(0, 1.0, 30.0) == 0.0
    assert backoff_delay(10_000, 1.0, 30.0) == 30.0  # no overflow for a long failure streak


def test_retry_after_is_a_positive_integer_covering_backoff_and_load():
    assert retry_after_seconds(0.0, None) == 1
    assert retry_after_seconds(2.0, 1.2) == 4
    assert retry_after_seconds(30.0, 95.5) == 126
    assert isinstance(retry_after_seconds(0.5, 0.1), int)


def test_server_args_keep_extra_args_last():
    assert server_args("/m", "127.0.0.1", 9000, ("--max-tokens", "64")) == [
        "--model", "/m", "--host", "127.0.0.1", "--port", "9000", "--max-tokens", "64"]


def test_child_env_is_unbuffered_and_offline_only_for_local_models():
    assert child_env({"PATH": "/bin", "MLX_PROXY_API_KEYS": "sk-x", "MLX_PROXY_CACHE": "redis://:pw@h"},
                     offline=False) == {"PATH": "/bin", "PYTHONUNBUFFERED": "1"}
    base = {"PATH": "/bin"}
    local = child_env(base, offline=True)
    assert local["PYTHONUNBUFFERED"] == "1" and local["HF_HUB_OFFLINE"] == "1" and local["PATH"] == "/bin"
    assert "HF_HUB_OFFLINE" not in child_env(base, offline=False)
    assert base == {"PATH": "/bin"}  # the launcher's own environment is left alone


def test_arguments_after_double_dash_go_to_the_server():
    own, extra = split_server_args(["--model", "m", "--port", "9", "--", "--max-tokens", "64", "--"])
    assert own == ["--model", "m", "--port", "9"]
    assert extra == ("--max-tokens", "64", "--")
    assert split_server_args(["--model", "m"]) == (["--model", "m"], ())


def test_parser_has_launcher_and_proxy_flags():
    parser = build_parser()
    args = parser.parse_args(["--model", "tiny-random", "--server-port", "9000", "--grace", "5",
                              "--cache", "none", "--max-restarts", "3"])
    assert (args.model, args.server_port, args.shutdown_grace, args.cache, args.max_restarts) == (
        "tiny-random", 9000, "5", "none", 3)


def test_the_launchers_child_is_the_first_upstream_and_upstream_flags_join_it_in_a_pool(capsys):
    assert launcher_main(["--model", "tiny-random", "--server-port", "9000", "--upstream", "http://mac-2:8080",
                          "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["upstream"] == ["http://127.0.0.1:9000", "http://mac-2:8080"]


def test_proxy_learns_the_model_and_the_server_sampling_defaults(tmp_path):
    from launcher.cli import model_overrides
    from launcher.models import ResolvedModel, model_fingerprint

    (tmp_path / "config.json").write_text("{}")
    model = ResolvedModel("my-model", str(tmp_path), local=True)
    overrides = model_overrides(model, ("--temp", "0.7", "--max-tokens", "64"))
    assert overrides["served_model"] == "my-model" and overrides["tokenizer_path"] == str(tmp_path)
    assert overrides["model_fingerprint"] == model_fingerprint(tmp_path)
    assert overrides["sampling_defaults"] == ("temperature=0.7",)
    assert "sampling_defaults" not in model_overrides(model, ())  # config/env may still set it


def test_listening_sockets_are_read_from_proc_net_tcp():
    from launcher.policy import listening_inodes
    table = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
             "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n"
             "   1: 0100007F:1F90 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n"
             "   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0\n")
    assert listening_inodes(table, 8080) == {"4242"}  # listening on 8080 (0x1F90), not the connection
    assert listening_inodes(table, 9999) == set()


def test_the_listener_of_a_port_is_found_by_pid():
    import os
    import socket

    from launcher.supervisor import listening_pids, port_in_use
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        assert listening_pids(port) == {os.getpid()}
    assert not port_in_use("127.0.0.1", port)
