"""The Faust app subclass: where Faust's table directory goes."""

from __future__ import annotations

import tempfile

from pipeline.transport import App


def test_faust_table_directory_is_under_the_temp_directory_which_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path / "fresh"))
    app = App("some-app", fetch_max_wait_ms=100, broker="kafka://127.0.0.1:1", store="memory://")
    assert app.conf.datadir == tmp_path / "fresh" / "cc-kpi-pipeline" / "some-app-data"
    assert app.conf.datadir.parent.is_dir()  # Faust makes the directory itself only, at start
