"""Simulated days for the report tests, each with an optional planted cause of missed targets.

Every day is its own simulation (its own seed: contact and event ids never collide) of the default center over
`HOURS` hours from 07:00 UTC, loaded as the reference center. A planted day keeps the *plan* of a normal day (its
forecasts are replaced by those a normal day publishes) and changes one thing:
- `volume`: 45% more arrivals than forecast;
- `absence`: a third of the agents absent (the forecast, and so the plan, unchanged);
- `aht`: a slow system: talk and after-contact work 45% longer than planned;
- `not_ready`: every shift has a training session (agents not ready for 30 to 60 minutes).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time

from pipeline.contract import events as ev
from pipeline.tools.simulate.center import _Center, simulate
from pipeline.tools.simulate.config import CenterConfig

HOURS = 10.0


def normal_config(day: date, agents: int = 40) -> CenterConfig:
    reference = CenterConfig()
    config = replace(reference, agents=agents, duration_hours=HOURS, start=datetime.combine(day, time(7), UTC))
    return config.with_load_of(reference)


def planted_config(day: date, cause: str | None, agents: int = 40) -> CenterConfig:
    normal = normal_config(day, agents)
    if cause is None:
        return normal
    if cause == "volume":
        return replace(normal, rate_scale=normal.rate_scale * 1.45)
    if cause == "absence":
        return replace(normal, agents=round(agents * 2 / 3))
    if cause == "aht":
        return replace(
            normal,
            queues=tuple(replace(q, talk_mean=q.talk_mean * 1.45, acw_mean=q.acw_mean * 1.45) for q in normal.queues),
        )
    if cause == "not_ready":
        return replace(normal, training_prob=1.0)
    raise ValueError(cause)


def day_events(day: date, cause: str | None, seed: int, agents: int = 40) -> list[ev.Event]:
    """One simulated day; a planted day's forecasts are those of the normal day (the plan did not see it coming)."""
    events = list(simulate(planted_config(day, cause, agents), seed))
    if cause in ("volume", "aht"):
        plan = _Center(normal_config(day, agents), seed)
        plan._publish_forecasts()
        forecasts = [e for e in plan.events if isinstance(e, ev.ForecastPublished)]
        events = forecasts + [e for e in events if not isinstance(e, ev.ForecastPublished)]
    return events


SAMPLE_WEEK: dict[int, str | None] = {0: None, 1: "volume", 2: None, 3: "absence", 4: "aht"}
"""docs/sample-report: the second of two simulated weeks (Monday to Friday), with planted causes on three days."""


def sample_fortnight(first_monday: date = date(2026, 1, 5)) -> list[ev.Event]:
    """A normal week, then a week with the causes of `SAMPLE_WEEK` planted."""
    from datetime import timedelta

    events: list[ev.Event] = []
    for week in range(2):
        for weekday in range(5):
            day = first_monday + timedelta(days=7 * week + weekday)
            cause = SAMPLE_WEEK[weekday] if week else None
            events += day_events(day, cause, seed=1000 + 10 * week + weekday)
    return events


if __name__ == "__main__":  # python tests/report_days.py OUT.jsonl: the sample report's events
    import sys

    from pipeline.tools.simulate.jsonl import write_jsonl

    print(write_jsonl(iter(sample_fortnight()), sys.argv[1]), "events ->", sys.argv[1])
