"""`python -m pipeline run`'s simulated center: a busy center now, in real time, unless told to play faster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pipeline.__main__ import main
from pipeline.tools.run import demo_center
from pipeline.tools.simulate import CenterConfig


def hourly_loads(config: CenterConfig) -> list[float]:
    """Mean arrival rate (relative) of each hour of the period, by the minute."""
    return [sum(config.load_at(h * 3600 + m * 60 + 30) for m in range(60)) / 60 for h in range(24)]


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 12, 3, 0, 17, 42, 123456, tzinfo=UTC),  # the small hours: the old demo's closed center
        datetime(2026, 7, 14, 10, 0, tzinfo=UTC),  # the curve's own busy hour
        datetime(2026, 3, 29, 19, 59, 59, tzinfo=ZoneInfo("Europe/Paris")),
    ],
)
def test_by_default_the_busiest_simulated_hour_begins_at_the_wall_clock_now(now: datetime) -> None:
    config = demo_center(now, hours=24, speed=1)
    assert config.start == now.replace(microsecond=0)  # real time: events are stamped as they are sent
    loads = hourly_loads(config)
    assert max(range(24), key=loads.__getitem__) == 0, loads  # the first hour played is the busiest
    assert loads[0] > 3 * min(loads)  # and busy: not a flat curve (the night is far quieter)


def test_faster_the_period_starts_in_the_past_so_no_event_is_ahead_of_the_clock() -> None:
    now = datetime(2026, 12, 3, 0, 17, tzinfo=UTC)
    config = demo_center(now, hours=8, speed=60)
    # the last event, due 8 h / 60 after the start of the run, is stamped at or before that wall time
    assert config.start + timedelta(hours=8) <= now + timedelta(hours=8 / 60)
    assert config.start == now - timedelta(hours=8 * (1 - 1 / 60))
    assert max(range(24), key=hourly_loads(config).__getitem__) == 0  # still the busiest hour first


def test_the_command_defaults_to_real_time_from_the_busy_hour(monkeypatch) -> None:
    calls: list[tuple] = []

    def run_demo(*args: object) -> int:
        calls.append(args)
        return 0

    monkeypatch.setattr("pipeline.tools.run.run_demo", run_demo)
    assert main(["run"]) == 0
    assert calls[0][:2] == (8.0, 1.0)  # hours, speed
