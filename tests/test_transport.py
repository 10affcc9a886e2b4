"""The Faust app subclass: where Faust's table directory goes."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

import pytest

from pipeline.runtime.transport import App


def test_faust_table_directory_is_under_the_temp_directory_which_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "fresh"))
    app = App("some-app", fetch_max_wait_ms=100, broker="kafka://127.0.0.1:1", store="memory://")
    assert app.conf.datadir == tmp_path / "fresh" / "cc-kpi-pipeline" / "some-app-data"
    assert app.conf.datadir.parent.is_dir()  # Faust makes the directory itself only, at start


def test_a_worker_that_does_not_stop_after_the_signal_is_stopped_hard():
    """Faust waits for every event taken to be acked before it stops: a stuck agent would hold the worker for ever."""
    code = (
        "import logging, time; from pipeline.runtime.transport import _stop_hard_after; logging.basicConfig();"
        "_stop_hard_after(0.5); time.sleep(30)"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert done.returncode == 1 and time.monotonic() - started < 10
    assert "did not stop within" in done.stderr


async def test_a_crashed_processing_task_makes_the_worker_not_live_and_not_ready_at_once():
    from pipeline.core.settings import QueueConfig, load_settings
    from pipeline.processing.processor import Message
    from pipeline.runtime.app import create_app

    app = create_app(load_settings(broker_url="127.0.0.1:1", app_id="crash-test"), QueueConfig())
    assert app.health.live().ok and app.health.live().checks["crashed"] is False
    topic = next(t for t in app.processing if t.endswith("contact-events"))

    def bug(*args, **kwargs):  # input never raises; a bug does
        raise RecursionError("maximum recursion depth exceeded")

    app.pipeline.process = bug  # type: ignore[method-assign]
    app.inboxes[topic].put(0, [Message(topic, 0, 0, b"q1", b"{}")], 4)
    with pytest.raises(RecursionError):
        await app.processing[topic]()
    assert not app.health.live().ok and app.health.live().checks["crashed"] is True
    assert not app.health.ready().ok and app.health.ready().checks["crashed"] is True
