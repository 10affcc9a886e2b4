"""The pipeline's own forecast (pipeline.kpis.forecast, `python -m pipeline forecast`): on Poisson days drawn from
a known curve, so each result is compared with the curve itself (the best any forecast can do)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec
import numpy as np
import orjson
import pytest

from pipeline.__main__ import main
from pipeline.contract import events as ev
from pipeline.core.settings import QueueSettings
from pipeline.kpis import forecast as fc
from pipeline.state.queues import QueueState
from pipeline.tools.forecast import backtest_one, histories_from_records

STEP = 900
PER_DAY = 96
DAY0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())  # a Monday
WEEK = (1.0, 0.9, 0.9, 0.85, 0.8, 0.3, 0.0)  # Sunday closed


def curve(days: int, peak_per_interval: float = 20.0, week=WEEK) -> list[float]:
    """Expected arrivals per 15-minute interval: a morning and an afternoon peak, times the weekday's factor."""
    out = []
    for d in range(days):
        for i in range(PER_DAY):
            h = (i + 0.5) / 4
            shape = 0.02 + math.exp(-0.5 * ((h - 10.5) / 1.6) ** 2) + 0.9 * math.exp(-0.5 * ((h - 14.75) / 1.7) ** 2)
            out.append(peak_per_interval * shape * week[d % 7])
    return out


def history(truth: list[float], seed: int, aht: float = 300.0) -> fc.History:
    rng = np.random.default_rng(seed)
    offered = [float(x) for x in rng.poisson(truth)]
    return fc.History(DAY0, STEP, offered, offered, [x * aht for x in offered])


def test_the_method_is_near_the_true_curve_and_beats_both_baselines_on_known_days():
    truth = curve(28)
    gains, gaps = [], []
    for seed in range(5):
        s = backtest_one(history(truth, seed), 21, 7, truth)
        a = fc.coarsen(s["actual"], 2)
        w = {m: fc.wape(a, fc.coarsen(s[m], 2)) for m in ("method", "seasonal_naive", "weekday_average", "true_curve")}
        assert w["method"] < w["weekday_average"] < w["seasonal_naive"]
        gains.append(1 - w["method"] / w["seasonal_naive"])
        gaps.append(w["method"] / w["true_curve"] - 1)
    # the targets of issue 19 (30-minute intervals), as a median over seeds, on data whose curve is known exactly;
    # a single week of one queue is noisy (last week's realisation can happen to lie close to this week's)
    assert sorted(gains)[2] >= 0.20 and min(gains) >= 0.10, gains
    assert max(gaps) <= 0.10, gaps


def test_a_closed_weekday_is_forecast_closed_and_totals_follow_the_weekly_pattern():
    truth = curve(21)
    model = fc.fit(history(truth, 7), 7)
    assert model.day0 == DAY0 + 21 * fc.DAY  # a Monday again
    sunday = model.daily[6]
    assert sunday == 0.0
    expected = [math.fsum(truth[d * PER_DAY : (d + 1) * PER_DAY]) for d in range(7)]
    for d in range(6):  # within 5% of the true day totals (a day has ~500-1,700 contacts: noise ~2.5-4.5%)
        assert model.daily[d] == pytest.approx(expected[d], rel=0.06), d


def test_a_weekday_with_its_own_shape_keeps_it():
    """Saturdays peak in the afternoon only: the pooled shape fits them badly, so they keep their own."""
    truth = curve(28)
    for d in range(28):
        if d % 7 == 5:
            for i in range(PER_DAY):
                truth[d * PER_DAY + i] = 25.0 if 56 <= i < 64 else 0.0  # 14:00-16:00
    model = fc.fit(history(truth, 3), 7)
    saturday = model.shapes[5]
    assert sum(saturday[56:64]) == pytest.approx(1.0)
    assert model.shapes[0] == model.shapes[1]  # the others share the pooled shape
    assert sum(model.shapes[0][56:64]) < 0.3


def test_intraday_reforecast_scales_the_rest_of_today_by_how_it_runs():
    truth = curve(22)
    h = history(truth, 11)
    noon = 21 * PER_DAY + 48
    running_high = [x * 1.3 for x in h.offered[21 * PER_DAY : noon]]  # today runs 30% above the usual
    today = fc.History(
        DAY0, STEP, [*h.offered[: 21 * PER_DAY], *running_high], h.handled[:noon], h.handle_seconds[:noon]
    )
    plain = fc.forecast(today, 1, reforecast=False)
    re = fc.forecast(today, 1)
    assert plain[0].start == re[0].start == DAY0 + 21 * fc.DAY + 12 * 3600  # from the end of the history
    model = fc.fit(today, 2)
    f_so_far = math.fsum(model.offered(DAY0 + 21 * fc.DAY + i * STEP) for i in range(48))
    ratio = (math.fsum(running_high) + fc.REFORECAST_PRIOR) / (f_so_far + fc.REFORECAST_PRIOR)
    assert 1.2 < ratio < 1.4
    rest_of_today = 48
    for p, r in zip(plain[:rest_of_today], re[:rest_of_today], strict=True):
        assert r.offered == pytest.approx(p.offered * ratio)
    for p, r in zip(plain[rest_of_today:], re[rest_of_today:], strict=True):  # tomorrow: not rescaled
        assert r.offered == pytest.approx(p.offered)
    assert len(re) == 48 + PER_DAY  # the rest of today and one more day


def test_aht_is_handle_over_handled_at_the_interval_of_the_day_and_borrows_when_thin():
    n = 7 * PER_DAY
    handled = [0.0] * n
    handle = [0.0] * n
    for d in range(7):
        handled[d * PER_DAY + 40] = 10  # 10:00: 70 handled over the week, 200 s each
        handle[d * PER_DAY + 40] = 10 * 200
        handled[d * PER_DAY + 41] = 1  # 10:15: 7 handled, 500 s: too few, borrows from 10:00
        handle[d * PER_DAY + 41] = 500
    model = fc.fit(fc.History(DAY0, STEP, handled, handled, handle), 1)
    assert model.aht[40] == pytest.approx(200)
    assert model.aht[41] == pytest.approx((7 * 500 + 70 * 200) / 77)


def records(h: fc.History, queue="sales", channel="voice") -> list[dict]:
    out = []
    for k, o in enumerate(h.offered):
        start = datetime.fromtimestamp(h.day0 + k * STEP, UTC)
        end = datetime.fromtimestamp(h.day0 + (k + 1) * STEP, UTC)
        base = dict(kind="queue", queue_id=queue, channel=channel, window="interval", final=True)
        base |= dict(interval_start=start.isoformat(), interval_end=end.isoformat())
        base |= dict(offered=o, handled=h.handled[k], handle_seconds_sum=h.handle_seconds[k])
        out.append({**base, "revision": 2})
        out.append({**base, "revision": 1, "offered": 999})  # an older revision: ignored
    return out


def test_histories_from_records_take_final_interval_records_newest_revision_and_refuse_mixed_intervals():
    h = history(curve(8), 5)
    got = histories_from_records(records(h))[("sales", "voice")]
    assert list(got.offered) == list(h.offered)
    mixed = records(h)[:4] + [{**records(h)[0], "interval_end": "2026-01-05T00:30:00+00:00", "queue_id": "x"}]
    with pytest.raises(ValueError, match="mix interval lengths"):
        histories_from_records(mixed)


def test_the_forecast_command_writes_the_pipelines_own_forecast_events(tmp_path, capsys):
    h = history(curve(21), 9)
    path = tmp_path / "kpis.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records(h)))
    out = tmp_path / "forecast.jsonl"
    assert main(["forecast", "--kpis", str(path), "--days", "2", "--out", str(out)]) == 0
    events = [msgspec.json.decode(line, type=ev.ContactTopicEvent) for line in out.read_bytes().splitlines()]
    assert all(isinstance(e, ev.ForecastPublished) and e.source == "pipeline" for e in events)
    assert len(events) == 3 * PER_DAY  # today (the history ended at midnight) and 2 more days
    assert events[0].interval_start == datetime.fromtimestamp(h.end, UTC)
    assert {e.aht_seconds for e in events} == {300.0}
    assert "1 queue/channel histories" in capsys.readouterr().err


def test_the_forecast_command_refuses_a_missing_file_with_one_sentence(tmp_path, capsys):
    assert main(["forecast", "--kpis", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m pipeline forecast: cannot read the history") and "\n" not in err


def forecast_event(source: str, offered: float, minute: int) -> ev.ForecastPublished:
    return ev.ForecastPublished(
        event_id=f"{source}{minute}",
        time=datetime(2026, 1, 5, 8, minute, tzinfo=UTC),
        queue_id="sales",
        channel="voice",
        interval_start=datetime(2026, 1, 5, 9, tzinfo=UTC),
        offered=offered,
        aht_seconds=300,
        source=source,  # type: ignore[arg-type]
    )


def test_an_external_wfm_forecast_wins_over_the_pipelines_own_whatever_the_order():
    start = int(datetime(2026, 1, 5, 9, tzinfo=UTC).timestamp() * 1000)
    for order in (
        [("pipeline", 10, 1), ("wfm", 20, 2), ("pipeline", 30, 3)],
        [("wfm", 20, 1), ("pipeline", 30, 2)],
        [("pipeline", 10, 1), ("pipeline", 12, 2), ("wfm", 20, 3), ("wfm", 21, 4)],
    ):
        state = QueueState(900, 60, 3600, lambda q: QueueSettings())
        for source, offered, minute in order:
            assert state.apply(forecast_event(source, offered, minute)) is None
        wfm = [o for s, o, _ in order if s == "wfm"]
        assert state.forecast("sales", "voice", start).offered == wfm[-1]
        # the pipeline's own is kept beside the WFM's (shown, not compared): the newest of its own
        own = [o for s, o, _ in order if s == "pipeline"]
        assert state.forecast("sales", "voice", start).own() == (own[-1], 300)
    state = QueueState(900, 60, 3600, lambda q: QueueSettings())
    for source, offered, minute in [("pipeline", 10, 1), ("pipeline", 12, 2)]:
        state.apply(forecast_event(source, offered, minute))
    assert state.forecast("sales", "voice", start).offered == 12  # the newer of its own
    assert state.apply(forecast_event("pipeline", 12, 2)) == "duplicate"
    state.apply(forecast_event("wfm", 20, 3))
    assert state.apply(forecast_event("pipeline", 12, 2)) == "duplicate"  # still recognised beside the WFM's
    restored = QueueState(900, 60, 3600, lambda q: QueueSettings())
    restored.restore(state.snapshot())
    assert restored.forecast("sales", "voice", start) == state.forecast("sales", "voice", start)


def test_both_forecasts_are_exported_beside_each_other():
    from eventlog import keyed_messages as messages_of
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.core.settings import QueueConfig, load_settings
    from pipeline.exposition.metrics import build_registry, exposition
    from pipeline.processing.processor import ContactProcessor, PipelineStats

    settings = load_settings(broker_url="x:1")
    stats = PipelineStats()
    contacts = ContactProcessor(settings, QueueConfig(), stats)
    events = [forecast_event("pipeline", 10, 1), forecast_event("wfm", 20, 2)]
    events.append(ev.SourceHeartbeat(event_id="hb", time=datetime(2026, 1, 5, 9, 5, tzinfo=UTC)))
    contacts.process(messages_of("c", events, settings.partitions), lambda p: None)
    text = exposition(build_registry(contacts, stats)).decode()
    values = {f.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if "forecast" in f.name}
    assert values == {
        "cc_queue_forecast_offered": 20,
        "cc_queue_forecast_aht_seconds": 300,
        "cc_queue_own_forecast_offered": 10,
        "cc_queue_own_forecast_aht_seconds": 300,
    }


@pytest.mark.integration
def test_forecast_from_the_kpi_topic_published_to_the_contact_topic(broker, monkeypatch):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from pipeline.core.settings import load_settings
    from pipeline.runtime.broker import ensure_topics

    monkeypatch.setenv("PIPELINE_BROKER_URL", broker.bootstrap)
    monkeypatch.setenv("PIPELINE_TOPIC_PREFIX", "forecast-e2e")
    settings = load_settings()
    asyncio.run(ensure_topics(settings))
    h = history(curve(8), 21)

    async def put_records() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            for r in records(h):
                key = f"{r['queue_id']}|{r['channel']}|{r['interval_start']}".encode()
                await producer.send(settings.topic("kpis"), orjson.dumps(r), key=key)
            await producer.flush()
        finally:
            await producer.stop()

    async def read_forecasts() -> list[ev.ForecastPublished]:
        consumer = AIOKafkaConsumer(
            settings.topic("contact-events"), bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        out: list[ev.ForecastPublished] = []
        try:
            quiet = 0
            while quiet < 3:  # until 3 s without a message
                batches = await consumer.getmany(timeout_ms=1000)
                quiet = 0 if batches else quiet + 1
                for msgs in batches.values():
                    for m in msgs:
                        got = msgspec.json.decode(m.value, type=ev.ContactTopicEvent | list[ev.ContactTopicEvent])
                        for e in got if isinstance(got, list) else [got]:
                            if isinstance(e, ev.ForecastPublished):
                                out.append(e)
        finally:
            await consumer.stop()
        return out

    asyncio.run(put_records())
    assert main(["forecast", "--from-topic", "--days", "1", "--publish"]) == 0
    published = asyncio.run(read_forecasts())
    assert len(published) == 2 * PER_DAY  # the day after the history (today) and one more
    # the worker's periodic job (PIPELINE_FORECAST_EVERY_MINUTES) publishes the same forecast, same event ids
    from pipeline.runtime.forecast_job import publish_own_forecast

    monkeypatch.setenv("PIPELINE_FORECAST_DAYS", "1")
    assert asyncio.run(publish_own_forecast(load_settings())) == 2 * PER_DAY
    again = asyncio.run(read_forecasts())
    assert sorted(e.event_id for e in again) == sorted(2 * [e.event_id for e in published])
    assert {e.source for e in published} == {"pipeline"} and {e.queue_id for e in published} == {"sales"}
    expected = {p.start: p.offered for p in fc.forecast(h, 1)}
    assert {int(e.interval_start.timestamp()): e.offered for e in published} == pytest.approx(
        {s: round(o, 3) for s, o in expected.items()}
    )


def test_the_backtest_command_scores_a_kpi_record_file_against_both_baselines(tmp_path, capsys):
    truth = curve(28)
    h = history(truth, 4)
    path = tmp_path / "kpis.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records(h)))
    assert main(["forecast", "backtest", "--kpis", str(path)]) == 0
    out = capsys.readouterr().out
    s = backtest_one(h, 21, 7, None)
    a = fc.coarsen(s["actual"], 2)
    for m in ("method", "seasonal_naive", "weekday_average"):  # the same figures as computed here
        assert f"{fc.wape(a, fc.coarsen(s[m], 2)) * 100:5.1f}%" in out.splitlines()[3]
    assert "true_curve" in out and "30m: method below seasonal naive by" in out
    assert "above the true curve" not in out  # unknown for a user's file


def test_histories_read_the_records_the_worker_writes():
    """The real KPI records (as `replay --kpi-out` writes them), not hand-made dicts: offered per interval and the
    handle time land in the history."""
    from datetime import timedelta

    from eventlog import keyed_messages

    from pipeline.core.settings import QueueConfig, load_settings
    from pipeline.processing.processor import ContactProcessor, PipelineStats

    settings = load_settings(broker_url="x:1")
    nine = datetime(2026, 1, 5, 9, tzinfo=UTC)
    events: list[ev.Event] = []
    for i in range(20):  # 20 contacts from 09:00, one every 90 s: 10 per quarter hour, 100 s talk, 20 s ACW
        t = nine + timedelta(seconds=90 * i)
        ids = dict(contact_id=f"c{i}", queue_id="sales", channel="voice")
        events += [
            ev.ContactOffered(event_id=f"{i}o", time=t, **ids),
            ev.ContactAnswered(event_id=f"{i}a", time=t + timedelta(seconds=5), agent_id="a", **ids),
            ev.ContactEnded(event_id=f"{i}e", time=t + timedelta(seconds=105), agent_id="a", **ids),
            ev.AcwEnded(event_id=f"{i}w", time=t + timedelta(seconds=125), agent_id="a", disposition="x", **ids),
        ]
    events.sort(key=lambda e: e.time)
    events.append(ev.SourceHeartbeat(event_id="hb", time=nine + timedelta(hours=2)))
    contacts = ContactProcessor(settings, QueueConfig(), PipelineStats())
    result = contacts.process(keyed_messages("c", events, settings.partitions))
    lines = [orjson.loads(msgspec.json.encode(r)) for r in result.records]
    got = histories_from_records(lines)[("sales", "voice")]
    k = (int(nine.timestamp()) - got.day0) // got.step
    assert got.step == 900 and list(got.offered[k : k + 2]) == [10, 10]
    assert math.fsum(got.handled) == 20 and math.fsum(got.handle_seconds) == pytest.approx(20 * 120)


@pytest.mark.parametrize(
    "var, value, ok",
    [
        ("PIPELINE_FORECAST_EVERY_MINUTES", "30", 30.0),
        ("PIPELINE_FORECAST_EVERY_MINUTES", "0", 0.0),
        ("PIPELINE_FORECAST_EVERY_MINUTES", "-5", None),
        ("PIPELINE_FORECAST_DAYS", "7", 7),
        ("PIPELINE_FORECAST_DAYS", "0", None),
        ("PIPELINE_FORECAST_DAYS", "two", None),
    ],
)
def test_forecast_settings_arrive_as_strings_and_wrong_ones_name_the_variable(monkeypatch, var, value, ok):
    from pipeline.core.settings import SettingsError, load_settings

    monkeypatch.setenv(var, value)
    if ok is None:
        with pytest.raises(SettingsError) as err:
            load_settings()
        assert f"{var}={value!r}" in str(err.value)
    else:
        assert getattr(load_settings(), var.removeprefix("PIPELINE_").lower()) == ok


@pytest.mark.parametrize(
    "text, named",
    [
        ("[queues.web]\nchat_concurrency = 0\n", "chat_concurrency"),
        ("[queues.web]\nshrinkage = 1.0\n", "shrinkage"),
        ("[defaults]\nmax_occupancy = 0\n", "max_occupancy"),
    ],
)
def test_wrong_staffing_fields_of_the_queue_file_name_the_field(tmp_path, text, named):
    from pipeline.core.settings import QueueConfig, SettingsError

    path = tmp_path / "queues.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as err:
        QueueConfig.load(path)
    assert named in str(err.value)
    good = tmp_path / "good.toml"
    good.write_text("[queues.web]\nchat_concurrency = 3\nshrinkage = 0.3\nmax_occupancy = 0.85\n")
    web = QueueConfig.load(good).for_queue("web")
    assert (web.chat_concurrency, web.shrinkage, web.max_occupancy) == (3, 0.3, 0.85)
