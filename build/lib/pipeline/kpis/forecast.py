"""Forecasting offered contacts and AHT per queue, channel and interval (docs/staffing.md: "Forecast").

Pure: numbers in, numbers out (no Kafka, Faust, Prometheus or settings). The method, per queue and channel:

1. **Daily volume** (weekly seasonality): the day totals of the complete days of the history, forecast by
   Holt-Winters exponential smoothing with an additive weekly season (statsmodels `ExponentialSmoothing`, level
   and season fitted by maximum likelihood); with fewer than two weeks, the mean of the same weekday (else of all
   days). A weekday with no contact in the history stays at 0 (a closed day).
2. **Intraday profile** (intraday seasonality): each interval's share of its day, pooled over every day of
   the history, which averages out the noise of single days. A weekday whose own shape differs from the pooled
   one (chi-square test of its counts against it, p < 0.001) keeps its own shape, and the pool is made again
   without it.
3. **Offered** = daily volume x the interval's share.
4. **AHT**: handle time over handled contacts at the same interval of the day, pooled over the history; an
   interval with fewer than `MIN_HANDLED` handled contacts widens to its neighbours until it has them.
5. **Intraday reforecast**: when the history ends inside today, the rest of today is scaled by how today is
   running so far: (actual + C) / (forecast + C) over today's elapsed intervals, C = `REFORECAST_PRIOR`
   contacts, so that the first few contacts of the morning do not swing the day.

Days are UTC days, as the pipeline's intervals are aligned in UTC. statsmodels is imported only when a forecast is
made, so the worker does not load it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

from pipeline.contract import events as ev

DAY = 86400
MIN_HANDLED = 20
"""Handled contacts below which an interval's AHT borrows from the neighbouring intervals."""
REFORECAST_PRIOR = 30.0
"""Contacts of prior weight in the intraday reforecast ratio."""
PROFILE_P_VALUE = 0.001
"""A weekday keeps its own intraday shape when the pooled shape fits its counts this badly (chi-square)."""
MIN_EXPECTED = 5.0
"""Contacts each cell of the chi-square test expects at least (neighbouring intervals merged)."""


@dataclass(frozen=True, slots=True)
class History:
    """One queue and channel's interval counts on a regular grid that starts at a UTC midnight.

    `offered[k]` etc. belong to the interval starting at `day0 + k * step`. The last day may be partial (today so
    far): `len(offered)` need not be a multiple of the intervals per day.
    """

    day0: int  # epoch seconds, a UTC midnight
    step: int  # interval seconds, dividing a day
    offered: Sequence[float]
    handled: Sequence[float]
    handle_seconds: Sequence[float]

    @property
    def per_day(self) -> int:
        return DAY // self.step

    @property
    def complete_days(self) -> int:
        return len(self.offered) // self.per_day

    @property
    def end(self) -> int:
        """Start of the first interval after the history (epoch seconds)."""
        return self.day0 + len(self.offered) * self.step


def history_from_counts(rows: Iterable[tuple[int, float, float, float]], step: int) -> History:
    """A history from (interval start epoch seconds, offered, handled, handle seconds) rows in any order; missing
    intervals are zeros (no contact), duplicates add up. Starts at the UTC midnight of the first row."""
    if step <= 0 or DAY % step:
        raise ValueError(f"interval of {step} s does not divide a day")
    data = sorted(rows)
    if not data:
        raise ValueError("no interval counts to forecast from")
    day0 = data[0][0] // DAY * DAY
    n = (data[-1][0] - day0) // step + 1
    offered, handled, handle = [0.0] * n, [0.0] * n, [0.0] * n
    for start, o, h, s in data:
        if start % step:
            raise ValueError(f"interval start {start} is not aligned to {step} s intervals")
        k = (start - day0) // step
        offered[k] += o
        handled[k] += h
        handle[k] += s
    return History(day0, step, offered, handled, handle)


def weekday(t: int) -> int:
    """Monday 0 .. Sunday 6 of a UTC epoch second."""
    return (t // DAY + 3) % 7  # 1970-01-01 was a Thursday


@dataclass(frozen=True, slots=True)
class Point:
    """The forecast for one interval."""

    start: int  # epoch seconds
    offered: float
    aht_seconds: float | None  # None: nothing was ever handled in the history


@dataclass(frozen=True, slots=True)
class Model:
    """What the history says: daily volumes ahead, intraday shapes, AHT by interval of the day."""

    day0: int  # first day the daily forecast covers (the day after the last complete day)
    step: int
    daily: tuple[float, ...]  # forecast day totals from day0 on
    shapes: tuple[tuple[float, ...], ...]  # per weekday (Mon..Sun): share of the day per interval
    aht: tuple[float | None, ...]  # per interval of the day

    def offered(self, t: int) -> float:
        d = (t - self.day0) // DAY
        if not 0 <= d < len(self.daily):
            raise ValueError("outside the forecast horizon")
        return self.daily[d] * self.shapes[weekday(t)][(t % DAY) // self.step]


def _daily_totals(h: History) -> list[float]:
    per = h.per_day
    return [math.fsum(h.offered[d * per : (d + 1) * per]) for d in range(h.complete_days)]


def _daily_forecast(totals: list[float], first_weekday: int, days: int) -> list[float]:
    """Day totals for the `days` after the history; `first_weekday`: the weekday of totals[0]."""
    n = len(totals)
    closed = [all(totals[d] == 0 for d in range(n) if (first_weekday + d) % 7 == w) for w in range(7)]
    if n >= 14 and any(totals):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing  # heavy: only when forecasting

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on short, flat series
            fitted: Any = ExponentialSmoothing(
                totals, trend=None, seasonal="add", seasonal_periods=7, initialization_method="estimated"
            ).fit()
            ahead = [float(x) for x in fitted.forecast(days)]
    else:
        by_day: dict[int, list[float]] = {}
        for d, v in enumerate(totals):
            by_day.setdefault((first_weekday + d) % 7, []).append(v)
        overall = math.fsum(totals) / n if n else 0.0
        ahead = [
            math.fsum(by_day[w]) / len(by_day[w]) if (w := (first_weekday + n + k) % 7) in by_day else overall
            for k in range(days)
        ]
    return [0.0 if closed[(first_weekday + n + k) % 7] and n >= 7 else max(0.0, v) for k, v in enumerate(ahead)]


def _shapes(h: History) -> list[tuple[float, ...]]:
    """Per weekday, the intraday shape: the one pooled over the weekdays that fit it, or the weekday's own. The
    pool starts with every open weekday; the one that fits it worst, if badly, leaves it and the pool is made again
    without it (so that one odd weekday does not bend the shape of the others), until every weekday in it fits;
    then a weekday that left but fits the final pool comes back."""
    from scipy.stats import chi2  # statsmodels' own dependency

    per = h.per_day
    own = [[0.0] * per for _ in range(7)]
    for d in range(h.complete_days):
        w = weekday(h.day0 + d * DAY)
        for i in range(per):
            own[w][i] += h.offered[d * per + i]
    totals = [math.fsum(x) for x in own]
    flat = tuple([1.0 / per] * per)

    def p_value(w: int, shared: tuple[float, ...]) -> float:
        """Chi-square test of the weekday's counts against a shape. Neighbouring intervals are merged until each
        cell expects MIN_EXPECTED contacts: the test is wrong on near-empty cells (a night interval expecting 0.2
        contacts that had 2 is not a different shape)."""
        t = totals[w]
        cells: list[tuple[float, float]] = []
        c_run = e_run = 0.0
        for c, s in zip(own[w], shared, strict=True):
            c_run += c
            e_run += t * s
            if e_run >= MIN_EXPECTED:
                cells.append((c_run, e_run))
                c_run = e_run = 0.0
        if cells and (c_run or e_run):
            c_last, e_last = cells.pop()
            cells.append((c_last + c_run, e_last + e_run))
        if len(cells) <= 1:
            return 1.0
        stat = math.fsum((c - e) ** 2 / e for c, e in cells)
        return float(chi2.sf(stat, len(cells) - 1))

    def pooled(pool: set[int]) -> tuple[float, ...]:
        total = math.fsum(totals[w] for w in pool)
        return tuple(math.fsum(own[w][i] for w in pool) / total for i in range(per)) if total > 0 else flat

    open_days = {w for w in range(7) if totals[w] > 0}
    pool = set(open_days)
    while len(pool) > 1:  # the worst misfit leaves, one at a time
        shared = pooled(pool)
        worst = min(pool, key=lambda w: p_value(w, shared))
        if p_value(worst, shared) >= PROFILE_P_VALUE:
            break
        pool.discard(worst)
    shared = pooled(pool)
    pool |= {w for w in open_days - pool if p_value(w, shared) >= PROFILE_P_VALUE}  # fits the final pool: back in
    shared = pooled(pool)
    return [shared if totals[w] <= 0 or w in pool else tuple(c / totals[w] for c in own[w]) for w in range(7)]


def _aht(h: History) -> tuple[float | None, ...]:
    per, days = h.per_day, max(1, -(-len(h.offered) // h.per_day))
    handled = [0.0] * per
    handle = [0.0] * per
    for k in range(min(len(h.handled), days * per)):
        handled[k % per] += h.handled[k]
        handle[k % per] += h.handle_seconds[k]
    all_handled = math.fsum(handled)
    if all_handled <= 0:
        return tuple([None] * per)
    overall = math.fsum(handle) / all_handled
    out: list[float | None] = []
    for i in range(per):
        n, s = handled[i], handle[i]
        width = 0
        while n < MIN_HANDLED and width < per // 2:
            width += 1
            for j in (i - width, i + width):
                n += handled[j % per]
                s += handle[j % per]
        out.append(s / n if n >= MIN_HANDLED else overall)
    return tuple(out)


def fit(h: History, days: int) -> Model:
    """The model of a history, with daily volumes for `days` days after its last complete day."""
    if h.complete_days < 1:
        raise ValueError("the history needs at least one complete day")
    totals = _daily_totals(h)
    first = weekday(h.day0)
    return Model(
        h.day0 + h.complete_days * DAY,
        h.step,
        tuple(_daily_forecast(totals, first, days)),
        tuple(_shapes(h)),
        _aht(h),
    )


def reforecast_ratio(actual: float, forecast: float, prior: float = REFORECAST_PRIOR) -> float:
    """How today is running: (actual + prior) / (forecast + prior) over its elapsed intervals."""
    return (actual + prior) / (forecast + prior)


def forecast(h: History, days: int = 14, *, reforecast: bool = True) -> list[Point]:
    """Every interval from the end of the history to the end of the `days`-th day after today (today = the day of
    the history's end): the rest of today, reforecast by how it is running, and the next `days` days."""
    model = fit(h, days + 1)
    per = h.per_day
    today = model.day0  # the day after the last complete day: today, partly in the history or not yet begun
    elapsed = len(h.offered) - h.complete_days * per  # intervals of today in the history
    ratio = 1.0
    if reforecast and elapsed:
        actual = math.fsum(h.offered[h.complete_days * per :])
        expected = math.fsum(model.offered(today + i * h.step) for i in range(elapsed))
        ratio = reforecast_ratio(actual, expected)
    out = []
    t = h.end
    end = today + (days + 1) * DAY
    while t < end:
        value = model.offered(t) * (ratio if t < today + DAY else 1.0)
        out.append(Point(t, value, model.aht[(t % DAY) // h.step]))
        t += h.step
    return out


# ---- from KPI records to histories, and to events ------------------------------------------------------


Key = tuple[str, str]  # queue, channel


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def histories_from_records(records: Iterable[dict[str, Any]]) -> dict[Key, History]:
    """Per queue and channel, the history of the final interval records (the newest revision of each)."""
    newest: dict[tuple[str, str, int], dict[str, Any]] = {}
    steps: set[int] = set()
    for r in records:
        if r.get("kind", "queue") != "queue" or r.get("window", "interval") != "interval" or not r.get("final"):
            continue
        start = _epoch(r["interval_start"])
        steps.add(_epoch(r["interval_end"]) - start)
        key = (r["queue_id"], r["channel"], start)
        if key not in newest or r["revision"] >= newest[key]["revision"]:
            newest[key] = r
    if not newest:
        raise ValueError("no final interval records of a queue")
    if len(steps) != 1:
        raise ValueError(f"the records mix interval lengths {sorted(steps)} s")
    (step,) = steps
    rows: dict[Key, list[tuple[int, float, float, float]]] = {}
    for (q, ch, start), r in newest.items():
        rows.setdefault((q, ch), []).append((start, r["offered"], r["handled"], r["handle_seconds_sum"]))
    # every queue's grid ends where the newest record of any queue ends: quiet queues had no contacts since
    end = max(s for _, _, s in newest) + step
    out: dict[Key, History] = {}
    for qc, of_queue in rows.items():
        h = history_from_counts(of_queue, step)
        pad = (end - h.end) // step
        if pad > 0:
            h = replace(
                h,
                offered=[*h.offered, *[0.0] * pad],
                handled=[*h.handled, *[0.0] * pad],
                handle_seconds=[*h.handle_seconds, *[0.0] * pad],
            )
        out[qc] = h
    return out


def forecast_events(
    histories: dict[Key, History], days: int, reforecast: bool = True
) -> tuple[list[ev.ForecastPublished], list[Key]]:
    """`forecast.published` events of the pipeline's own forecast, stamped with the end of each history; and the
    queues skipped (nothing ever handled: no AHT to forecast)."""
    out: list[ev.ForecastPublished] = []
    skipped: list[Key] = []
    for (q, ch), h in sorted(histories.items()):
        points = forecast(h, days, reforecast=reforecast)
        if any(p.aht_seconds is None for p in points) or ch not in ev.CHANNELS:
            skipped.append((q, ch))
            continue
        made = datetime.fromtimestamp(h.end, UTC)
        for p in points:
            out.append(
                ev.ForecastPublished(
                    event_id=f"fc:{q}:{ch}:{p.start}:{h.end}",
                    time=made,
                    queue_id=q,
                    channel=cast(ev.ChannelName, ch),  # one of CHANNELS (checked above)
                    interval_start=datetime.fromtimestamp(p.start, UTC),
                    offered=round(p.offered, 3),
                    aht_seconds=round(p.aht_seconds or 0.0, 1),
                    source="pipeline",
                )
            )
    return out, skipped


# ---- accuracy -----------------------------------------------------------------------------------------------


def wape(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """Weighted absolute percentage error: sum |predicted - actual| / sum actual."""
    total = math.fsum(actual)
    if total <= 0:
        return math.nan
    return math.fsum(abs(p - a) for a, p in zip(actual, predicted, strict=True)) / total


def bias(actual: Sequence[float], predicted: Sequence[float]) -> float:
    """sum (predicted - actual) / sum actual: positive when the forecast is too high."""
    total = math.fsum(actual)
    if total <= 0:
        return math.nan
    return math.fsum(p - a for a, p in zip(actual, predicted, strict=True)) / total


def coarsen(values: Sequence[float], factor: int) -> list[float]:
    """Sums of `factor` consecutive intervals (15-minute counts -> 30-minute counts with factor 2)."""
    return [math.fsum(values[k : k + factor]) for k in range(0, len(values) - factor + 1, factor)]


def seasonal_naive(h: History, days: int) -> list[float]:
    """Baseline: each interval as the same interval one week before (the last week of the history repeated)."""
    per = h.per_day
    last_week = list(h.offered[(h.complete_days - 7) * per : h.complete_days * per])
    if len(last_week) < 7 * per:
        raise ValueError("seasonal naive needs a week of history")
    return [last_week[k % (7 * per)] for k in range(days * per)]


def weekday_average(h: History, days: int) -> list[float]:
    """Baseline: each interval as the plain average of the same interval on the same weekday in the history."""
    per = h.per_day
    sums = [[0.0] * per for _ in range(7)]
    counts = [0] * 7
    for d in range(h.complete_days):
        w = weekday(h.day0 + d * DAY)
        counts[w] += 1
        for i in range(per):
            sums[w][i] += h.offered[d * per + i]
    first = h.day0 + h.complete_days * DAY
    out: list[float] = []
    for d in range(days):
        w = weekday(first + d * DAY)
        out += [s / counts[w] if counts[w] else 0.0 for s in sums[w]]
    return out


def model_forecast(h: History, days: int) -> list[float]:
    """The method's offered forecast for the `days` complete days after the history (no reforecast)."""
    model = fit(h, days)
    return [model.offered(model.day0 + k * h.step) for k in range(days * h.per_day)]
