"""Child processes of the commands (embedded broker, workers, Prometheus, Alertmanager): each in a process group
of its own, so that stopping it stops everything it started, and always stopped on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

# A stop (Ctrl-C, SIGTERM) that came while a child was being started: the child exists from the fork on, but
# `Popen` returns it only after its exec, and an interrupt raised in between would lose the only handle to stop it.
_starting = False
_stop_deferred = False


def spawn(argv: list[str], log_file: Path | None, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start `argv` in a new process group, its output appended to `log_file` (or discarded). A stop that comes
    meanwhile (with `interrupt_on_sigterm`) stops the child, then interrupts as it would have."""
    global _starting, _stop_deferred
    _starting, proc = True, None
    try:
        with open(log_file, "ab") if log_file is not None else contextlib.nullcontext(subprocess.DEVNULL) as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        _starting = False
        if _stop_deferred:  # also when the start failed: the stop asked for is not lost, nor left for the next start
            _stop_deferred = False
            if proc is not None:
                stop(proc)
            raise KeyboardInterrupt
    return proc


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
    blocks, which stop the children it started. They run in process groups of their own, so nothing else would.
    Both wait while `spawn` starts a child (see `_starting`)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        global _stop_deferred
        if _starting:
            _stop_deferred = True
            return
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
