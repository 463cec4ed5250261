"""`python -m launcher.mlx_lm_server ARGS`: run the stock mlx_lm.server, and die with the launcher.

mlx_lm.server keeps running when its parent dies (even SIGKILLed), holding gigabytes of
weights and its port. This bootstrap starts a daemon thread that blocks reading stdin, a pipe
whose only writer is the launcher: when the launcher is gone, for whatever reason, the read
returns EOF and the process exits at once. Then it calls mlx_lm.server's own `main()` with
ARGS, exactly as the `mlx_lm.server` console script does; the server itself is not touched.
Works on macOS and Linux; on Linux the kernel's parent-death signal backs it up.
The module's name puts `mlx_lm` in the command line (`ps`, `pgrep -f mlx_lm`); on Linux the
process name (`ps -e`, top) is set to `mlx_lm.server` as well.
"""
from __future__ import annotations

import os
import signal
import sys
import threading

# Exit status when the launcher vanished (distinct from the server's own codes, for logs).
ORPHANED_EXIT_CODE = 3


def _exit_when_parent_gone(fd: int) -> None:
    """Block until the launcher's end of the pipe closes, then end this process."""
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    print("mlx_lm.server: the launcher is gone; exiting", file=sys.stderr, flush=True)
    os._exit(ORPHANED_EXIT_CODE)


# The name `ps -e` and top show on Linux (at most 15 bytes).
PROCESS_NAME = b"mlx_lm.server"


def _prctl_linux() -> None:
    """Linux only: ask the kernel to SIGKILL us when the launcher's spawning thread ends, and
    name the process after the server it runs."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig, pr_set_name = 1, 15
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        libc.prctl(pr_set_name, ctypes.c_char_p(PROCESS_NAME), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the stdin guard alone still covers the launcher's death


def main(argv: list[str]) -> None:
    launcher_pid = os.getppid()
    _prctl_linux()
    if os.getppid() != launcher_pid or launcher_pid == 1:
        os._exit(ORPHANED_EXIT_CODE)  # the launcher died before the signal was armed
    threading.Thread(target=_exit_when_parent_gone, args=(sys.stdin.fileno(),),
                     name="orphan-guard", daemon=True).start()
    from mlx_lm.server import main as server_main

    sys.argv = ["mlx_lm.server", *argv]
    server_main()


if __name__ == "__main__":
    main(sys.argv[1:])
