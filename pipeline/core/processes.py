"""Child processes of the commands (embedded broker, workers, Prometheus, Alertmanager): each in a process group
of its own, so that stopping it stops everything it started, and always stopped on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import FrameType


def spawn(argv: list[str], log_file: Path | None, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` in a new process group, its output appended to `log_file` (or discarded)."""
    if log_file is None:
        return subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
    with open(log_file, "ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to its group, and SIGKILL if it has not exited within `grace` seconds."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (`kill`, a CI job's timeout, systemd) stop a command as Ctrl-C does: through its `finally`
    blocks, which stop the children it started. They run in process groups of their own, so nothing else would."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
