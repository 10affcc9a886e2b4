"""Staffing maths (pipeline.kpis.staffing): published values, independent computations and a simulation.

- Erlang C and Erlang A reference values from ../shared/reference-values.md, to the digits given there.
- pyworkforce's Erlang C (an independent implementation) over a grid of loads, targets and agents.
- Erlang A against a brute-force computation (the birth-death chain's stationary distribution and the waiting
  customer's own chain by uniformization; no Beta-function identity) and against a ciw simulation of M/M/n+M.
- Large loads (2,000 Erlangs): finite, in [0, 1], monotone, and equal to a log-space Poisson computation.
- Properties (hypothesis): SL rises with agents; Erlang A with endless patience is Erlang C; minimality.
"""

from __future__ import annotations

import math
import statistics

import ciw
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyworkforce.queuing import ErlangC

from pipeline.kpis.staffing import asa, erlang_a, erlang_b, erlang_c, occupancy, predict, required_agents, service_level
from pipeline.kpis.staffing.erlang import VARIANTS
from pipeline.tools.staffing import main_staffing

# ---------------------------------------------------------------------------------------------------------------
# Erlang C: published values
# ---------------------------------------------------------------------------------------------------------------

EXAMPLE_1 = {"rate_per_second": 100 / 1800, "aht": 180.0, "threshold": 20.0, "target": 0.8}  # 10 Erlangs


@pytest.mark.parametrize(("agents", "expected"), [(11, 0.3896), (12, 0.6402), (13, 0.7956), (14, 0.8884), (15, 0.9415)])
def test_erlang_c_example_1_service_levels(agents, expected):
    """Call Centre Helper's worked example: 100 calls / 30 min, AHT 180 s, 20 s threshold."""
    assert round(service_level(agents, 10.0, 180.0, 20.0), 4) == expected


def test_erlang_c_example_1_fewest_agents():
    answer = required_agents(**EXAMPLE_1)
    assert answer.agents == 14
    assert answer.limited_by == "target"
    assert round(answer.service_level, 3) == 0.888
    assert round(answer.occupancy, 3) == 0.714
    assert round(answer.p_wait, 3) == 0.174
    assert round(answer.asa, 2) == 7.84
    assert answer.p_abandon == 0.0


def test_erlang_c_example_1_shrinkage_and_occupancy_cap():
    assert required_agents(**EXAMPLE_1, shrinkage=0.3).scheduled == 20
    capped = required_agents(**EXAMPLE_1, shrinkage=0.3, max_occupancy=0.7)
    assert (capped.agents, capped.scheduled, capped.for_target, capped.limited_by) == (15, 22, 14, "occupancy cap")
    assert capped.occupancy <= 0.7
    # A cap the target already meets changes nothing.
    assert required_agents(**EXAMPLE_1, max_occupancy=0.85).agents == 14


def test_erlang_c_example_2_contactcenters():
    """ContactCenters' M/M/c example: 4.2 calls/min, 2-minute service, 12 agents, 20 s target."""
    load = 4.2 * 2
    assert round(service_level(12, load, 120.0, 20.0), 4) == 0.8991
    assert round(asa(12, load, 120.0) / 60, 4) == 0.1022
    assert round(occupancy(12, load), 3) == 0.700
    assert round(erlang_c(12, load), 4) == 0.1839
    p = predict(12, 4.2 / 60, 120.0, 20.0)
    assert (round(p.service_level, 4), round(p.asa / 60, 4), round(p.p_wait, 4)) == (0.8991, 0.1022, 0.1839)


def _load_at_service_level(agents, aht, threshold, goal):
    """The load at which Erlang C gives exactly `goal`, by bisection (SL falls as the load rises)."""
    low, high = 0.0, float(agents)
    for _ in range(100):
        mid = (low + high) / 2
        if service_level(agents, mid, aht, threshold) > goal:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@pytest.mark.parametrize(("goal", "expected"), [(0.90, 19.0565), (0.95, 17.7949)])
def test_erlang_c_example_3_inverse(goal, expected):
    """Abstract Micro's Erlang library: 25 agents, AHT 180 s, 10 s target."""
    assert round(_load_at_service_level(25, 180.0, 10.0, goal), 4) == expected


# ---------------------------------------------------------------------------------------------------------------
# Erlang A: published values and the service level variant
# ---------------------------------------------------------------------------------------------------------------

EXAMPLE_A = {"agents": 12, "load": 8.4, "aht": 120.0, "patience": 60.0, "threshold": 20.0}


def test_erlang_a_example_abandons():
    """Example 2 with exponential patience of mean 1 minute: P(abandon) 0.0297, 59.8 abandons in 2,016 calls."""
    result = erlang_a(**EXAMPLE_A)
    assert round(result.p_abandon, 4) == 0.0297
    assert round(result.p_abandon * 2016, 1) == 59.8


def test_erlang_a_published_service_level_is_over_answered():
    """ContactCenters' simulation (days starting empty) reports SL 0.975: that is answered-in-time over answered.

    Steady state gives 0.9742 under abandons_ignored; counting abandons against (0.945) or in favour (0.969) does
    not come within their simulation's reach of 0.975 (their own ASA and SL differ from steady state by ~0.003).
    """
    by_variant = {v: erlang_a(**EXAMPLE_A, variant=v).service_level for v in VARIANTS}
    assert abs(by_variant["abandons_ignored"] - 0.975) < 0.002
    assert round(by_variant["abandons_against"], 4) == 0.9453
    for variant in ("abandons_against", "abandons_in_favour", "short_abandons_excluded"):
        assert abs(by_variant[variant] - 0.975) > 0.005


# ---------------------------------------------------------------------------------------------------------------
# Erlang A against a brute-force computation
# ---------------------------------------------------------------------------------------------------------------


def _brute_force_erlang_a(agents, load, aht, patience, threshold, short):
    """Erlang A from first principles: the birth-death chain truncated far out, and the waiting customer's own
    chain (i customers ahead; served or abandoned) solved by uniformization for the in-time probabilities."""
    mu, theta, lam = 1 / aht, 1 / patience, load / aht
    weights = [1.0]
    k = 1
    while True:
        weights.append(weights[-1] * lam / (min(k, agents) * mu + max(k - agents, 0) * theta))
        if k > agents + 20 and weights[-1] < 1e-18 * sum(weights):
            break
        k += 1
    total = sum(weights)
    pi = [w / total for w in weights]
    p_wait = sum(pi[agents:])
    queued = pi[agents:]  # queued[m]: an arrival finds m customers ahead of it in the queue
    mean_queue = sum(m * q for m, q in enumerate(queued))

    def outcomes_by(t):
        """P(served within t), P(abandoned within t), over the customers that queue (not yet divided by p_wait)."""
        size = len(queued)
        rate = agents * mu + size * theta  # uniformization rate >= every state's total rate
        state = list(queued)  # mass by customers ahead
        served = abandoned = 0.0
        poisson = math.exp(-rate * t)
        served_by = abandoned_by = 0.0
        j = 0
        cumulative = poisson
        while cumulative < 1 - 1e-15 or j < rate * t:
            new = [0.0] * size
            step_served = step_abandoned = 0.0
            for i, mass in enumerate(state):
                if mass == 0.0:
                    continue
                forward = (agents * mu + i * theta) / rate
                own = theta / rate
                if i == 0:
                    step_served += mass * forward
                else:
                    new[i - 1] += mass * forward
                step_abandoned += mass * own
                new[i] += mass * (1 - forward - own)
            served += step_served
            abandoned += step_abandoned
            state = new
            j += 1
            poisson *= rate * t / j
            # P(absorbed by time t) = sum_j P(N(t) = j) P(absorbed within j jumps); add as the jumps come.
            served_by += poisson * served
            abandoned_by += poisson * abandoned
            cumulative += poisson
        return served_by, abandoned_by

    served_t, abandoned_t = outcomes_by(threshold)
    _, abandoned_short = outcomes_by(short)
    p_abandon = theta * mean_queue / lam
    within = (1 - p_wait) + served_t
    return {
        "p_wait": p_wait,
        "p_abandon": p_abandon,
        "mean_wait": mean_queue / lam,
        "abandons_against": within,
        "abandons_ignored": within / (1 - p_abandon),
        "abandons_in_favour": within + abandoned_t,
        "short_abandons_excluded": within / (1 - abandoned_short),
    }


@pytest.mark.parametrize(
    ("agents", "load", "aht", "patience", "threshold"),
    [
        (12, 8.4, 120.0, 60.0, 20.0),  # the published example
        (7, 8.4, 120.0, 300.0, 20.0),  # overloaded: fewer agents than the load, the queue tail peaks away from 0
        (3, 2.0, 300.0, 30.0, 45.0),  # impatient callers, few agents
        (20, 15.0, 180.0, 600.0, 10.0),  # patient callers, short threshold
    ],
)
def test_erlang_a_matches_brute_force(agents, load, aht, patience, threshold):
    short = 5.0
    expected = _brute_force_erlang_a(agents, load, aht, patience, threshold, short)
    for variant in VARIANTS:
        result = erlang_a(agents, load, aht, patience, threshold, variant=variant, short_abandon_seconds=short)
        assert result.service_level == pytest.approx(expected[variant], abs=1e-9), variant
        assert result.p_wait == pytest.approx(expected["p_wait"], abs=1e-12)
        assert result.p_abandon == pytest.approx(expected["p_abandon"], abs=1e-12)
        assert result.mean_wait == pytest.approx(expected["mean_wait"], rel=1e-9)
        assert result.occupancy == pytest.approx(min(1, load * (1 - expected["p_abandon"]) / agents), rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# Erlang C against pyworkforce
# ---------------------------------------------------------------------------------------------------------------

PYWORKFORCE_GRID = [  # (transactions per interval, AHT minutes, interval minutes)
    (100, 3, 30),
    (20, 4, 60),
    (250, 2.5, 15),
    (600, 5, 30),
    (1500, 3, 60),
    (3000, 6, 60),
]


@pytest.mark.parametrize(("transactions", "aht_minutes", "interval"), PYWORKFORCE_GRID)
def test_erlang_c_agrees_with_pyworkforce(transactions, aht_minutes, interval):
    rate, aht = transactions / (interval * 60), aht_minutes * 60
    load = rate * aht
    for threshold in (10.0, 20.0, 60.0):
        # pyworkforce's argument named `asa` is the service level's threshold time (minutes), not a mean wait.
        theirs = ErlangC(transactions=transactions, aht=aht_minutes, asa=threshold / 60, interval=interval)
        assert theirs.intensity == pytest.approx(load)
        for agents in range(math.floor(load) + 1, math.ceil(load * 1.3) + 6):
            assert erlang_c(agents, load) == pytest.approx(theirs.waiting_probability(agents), rel=1e-9, abs=1e-15)
            assert service_level(agents, load, aht, threshold) == pytest.approx(theirs.service_level(agents), rel=1e-9)
            assert occupancy(agents, load) == pytest.approx(theirs.achieved_occupancy(agents), rel=1e-12)
        for target in (0.7, 0.8, 0.9, 0.95):
            for cap in (1.0, 0.85):
                ours = required_agents(rate, aht, threshold, target, max_occupancy=cap)
                result = theirs.required_positions(service_level=target, max_occupancy=cap)
                assert ours.agents == result["raw_positions"]
                assert ours.service_level == pytest.approx(result["service_level"], rel=1e-9)
                assert ours.p_wait == pytest.approx(result["waiting_probability"], rel=1e-9, abs=1e-15)


# ---------------------------------------------------------------------------------------------------------------
# Erlang A against a ciw simulation of M/M/n+M
# ---------------------------------------------------------------------------------------------------------------


def _simulate_erlang_a(
    agents, rate_per_minute, service_minutes, patience_minutes, threshold_minutes, seeds, minutes, warm_up
):
    """Per replication: P(abandon), SL (abandons against), SL over answered, ASA of answered (minutes)."""
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(rate=rate_per_minute)],
        service_distributions=[ciw.dists.Exponential(rate=1 / service_minutes)],
        number_of_servers=[agents],
        reneging_time_distributions=[ciw.dists.Exponential(rate=1 / patience_minutes)],
    )
    runs = []
    for seed in seeds:
        ciw.seed(seed)
        simulation = ciw.Simulation(network)
        simulation.simulate_until_max_time(minutes)
        # Customers who arrived after the warm-up and long enough before the end to have left the system.
        records = [r for r in simulation.get_all_records() if warm_up <= r.arrival_date <= minutes - 60]
        answered = [r for r in records if r.record_type == "service"]
        in_time = sum(r.waiting_time <= threshold_minutes for r in answered)
        runs.append(
            {
                "p_abandon": sum(r.record_type == "renege" for r in records) / len(records),
                "abandons_against": in_time / len(records),
                "abandons_ignored": in_time / len(answered),
                "asa": statistics.fmean(r.waiting_time for r in answered),
            }
        )
    return runs


@pytest.mark.parametrize(
    ("agents", "rate_per_minute", "service_minutes", "patience_minutes"),
    [(12, 4.2, 2.0, 1.0), (7, 4.2, 2.0, 2.0)],  # the published example; an overloaded queue (load 8.4 > 7)
)
def test_erlang_a_agrees_with_ciw_simulation(agents, rate_per_minute, service_minutes, patience_minutes):
    """16 independent replications of ~12,000 calls each (after a 1-hour warm-up). Tolerance: 4 standard errors
    of the replications' mean (Student's t with 15 degrees of freedom: a correct model fails one comparison with
    probability ~0.001; the seeds are fixed, so the test is deterministic), and the standard errors must be
    small enough (0.005 on a probability, 5% on the ASA) for the comparison to mean something."""
    threshold = 1 / 3  # 20 s
    runs = _simulate_erlang_a(
        agents,
        rate_per_minute,
        service_minutes,
        patience_minutes,
        threshold,
        seeds=range(16),
        minutes=3_000,
        warm_up=60,
    )
    load = rate_per_minute * service_minutes
    exact = {
        variant: erlang_a(agents, load, service_minutes * 60, patience_minutes * 60, 20.0, variant=variant)
        for variant in ("abandons_against", "abandons_ignored")
    }
    expected = {
        "p_abandon": exact["abandons_against"].p_abandon,
        "abandons_against": exact["abandons_against"].service_level,
        "abandons_ignored": exact["abandons_ignored"].service_level,
        "asa": exact["abandons_against"].asa / 60,
    }
    for name, value in expected.items():
        samples = [run[name] for run in runs]
        standard_error = statistics.stdev(samples) / math.sqrt(len(samples))
        print(f"{name}: exact {value:.5f}, simulated {statistics.fmean(samples):.5f} +- {standard_error:.5f}")
        assert standard_error < (0.05 * value if name == "asa" else 0.005), name
        assert abs(statistics.fmean(samples) - value) < 4 * standard_error, (name, statistics.fmean(samples), value)


# ---------------------------------------------------------------------------------------------------------------
# Large centers
# ---------------------------------------------------------------------------------------------------------------


def _log_poisson_erlang_c(agents, load):
    """Erlang C from log-space Poisson terms (lgamma), independent of the recursion."""
    log_terms = [k * math.log(load) - math.lgamma(k + 1) for k in range(agents)]
    log_top = agents * math.log(load) - math.lgamma(agents + 1) + math.log(agents / (agents - load))
    top = max(max(log_terms), log_top)
    below = sum(math.exp(t - top) for t in log_terms)
    waiting = math.exp(log_top - top)
    return waiting / (below + waiting)


def test_large_load_erlang_c_is_finite_monotone_and_precise():
    load = 2000.0
    previous_sl, previous_c = -1.0, 2.0
    for agents in range(1990, 2201):
        c = erlang_c(agents, load)
        sl = service_level(agents, load, 180.0, 20.0)
        assert 0.0 <= c <= 1.0 and 0.0 <= sl <= 1.0
        assert sl >= previous_sl and c <= previous_c
        previous_sl, previous_c = sl, c
        if agents > load:
            assert c == pytest.approx(_log_poisson_erlang_c(agents, load), rel=1e-10)
    assert erlang_b(5000, load) < 1e-300  # tiny, not an overflow or a NaN
    answer = required_agents(load / 180, 180.0, 20.0, 0.8)
    assert service_level(answer.agents, load, 180, 20) >= 0.8 > service_level(answer.agents - 1, load, 180, 20)


@pytest.mark.parametrize("patience", [60.0, 600.0])
def test_large_load_erlang_a_is_finite_and_monotone(patience):
    load = 2000.0
    previous = None
    for agents in range(1500, 2201, 25):
        result = erlang_a(agents, load, 180.0, patience, 20.0)
        values = (result.p_wait, result.p_abandon, result.service_level, result.occupancy)
        assert all(0.0 <= v <= 1.0 for v in values)
        assert math.isfinite(result.asa) and math.isfinite(result.mean_wait)
        if previous is not None:
            # Absolute accuracy ~1e-13: the in-time sums subtract running CDFs from 1 (docs/staffing.md).
            assert result.service_level >= previous.service_level - 1e-13
            assert result.p_abandon <= previous.p_abandon + 1e-13
        previous = result
    # Overloaded by a quarter, patient callers: the carried load is about what the agents can take.
    result = erlang_a(1600, load, 180.0, patience, 20.0)
    assert result.occupancy > 0.99
    assert result.p_abandon == pytest.approx(1 - 1600 / 2000, abs=0.01)


# ---------------------------------------------------------------------------------------------------------------
# Edge cases and properties
# ---------------------------------------------------------------------------------------------------------------


def test_edge_cases():
    assert required_agents(0.0, 180.0, 20.0, 0.8).agents == 0
    assert required_agents(0.0, 180.0, 20.0, 0.8, patience=60.0).scheduled == 0
    # Erlang C with no more agents than the load: the queue grows without bound.
    assert (service_level(10, 10.0, 180, 20), asa(10, 10.0, 180), erlang_c(10, 10.0)) == (0.0, math.inf, 1.0)
    # Erlang A is stable there, and with no agents everyone abandons.
    assert 0.0 < erlang_a(10, 10.0, 180.0, 60.0, 20.0).service_level < 1.0
    nobody = erlang_a(0, 10.0, 180.0, 60.0, 20.0)
    assert (nobody.p_wait, nobody.p_abandon, nobody.service_level) == (1.0, 1.0, 0.0)
    # Abandons in favour: those who give up within T count as served in time, so 0 agents can meet a target.
    favour = required_agents(1.0, 180.0, 120.0, 0.8, patience=10.0, variant="abandons_in_favour")
    assert favour.agents == 0
    for bad in (
        {"target": 1.0},
        {"target": 0.0},
        {"shrinkage": 1.0},
        {"max_occupancy": 0.0},
        {"variant": "nonsense"},
        {"patience": -1.0},
        {"aht": 0.0},
    ):
        with pytest.raises(ValueError):
            required_agents(**{**EXAMPLE_1, **bad})


@settings(max_examples=60, deadline=None)
@given(
    load=st.floats(0.1, 300.0),
    aht=st.floats(10.0, 900.0),
    threshold=st.floats(0.0, 120.0),
    patience=st.floats(5.0, 1200.0),
    variant=st.sampled_from(VARIANTS),
)
def test_service_level_rises_with_agents(load, aht, threshold, patience, variant):
    start = max(0, math.floor(load) - 10)
    sl_c = [service_level(n, load, aht, threshold) for n in range(start, start + 25)]
    sl_a = [
        erlang_a(n, load, aht, patience, threshold, variant=variant).service_level for n in range(start, start + 25)
    ]
    for series in (sl_c, sl_a):
        assert all(b >= a - 1e-12 for a, b in zip(series, series[1:], strict=False))


@settings(max_examples=40, deadline=None)
@given(
    load=st.floats(0.1, 100.0), extra=st.integers(1, 20), aht=st.floats(10.0, 900.0), threshold=st.floats(0.0, 120.0)
)
def test_erlang_a_with_endless_patience_is_erlang_c(load, extra, aht, threshold):
    agents = math.floor(load) + extra
    if agents < load + 0.5:  # keep the queue's tail short enough to sum quickly at patience 1e7 AHT
        agents += 1
    result = erlang_a(agents, load, aht, aht * 1e7, threshold)
    # Patience shifts them by O(1/patience): at 1e7 AHT by up to ~1e-5 near a load of 1 per agent (found at 46
    # agents, 45.5 Erlang). The limit extrapolated from 1e7 and 1e8 (Richardson) must be Erlang C.
    patient = erlang_a(agents, load, aht, aht * 1e8, threshold)

    def limit(name: str) -> float:
        return getattr(patient, name) - (getattr(result, name) - getattr(patient, name)) / 9

    assert limit("p_wait") == pytest.approx(erlang_c(agents, load), abs=1e-7)
    assert limit("service_level") == pytest.approx(service_level(agents, load, aht, threshold), abs=1e-7)
    assert result.asa == pytest.approx(asa(agents, load, aht) / (1 - result.p_abandon), rel=1e-4, abs=1e-6)
    assert result.p_abandon < 1e-5


@settings(max_examples=60, deadline=None)
@given(
    load=st.floats(0.05, 400.0),
    aht=st.floats(10.0, 900.0),
    threshold=st.floats(0.0, 120.0),
    target=st.floats(0.05, 0.99),
    patience=st.one_of(st.none(), st.floats(5.0, 1200.0)),
    cap=st.floats(0.5, 1.0),
)
def test_required_agents_is_the_fewest(load, aht, threshold, target, patience, cap):
    rate = load / aht
    answer = required_agents(rate, aht, threshold, target, patience=patience, max_occupancy=cap)
    meets = predict(answer.for_target, rate, aht, threshold, patience=patience)
    assert meets.service_level >= target
    if answer.for_target > 0:
        assert predict(answer.for_target - 1, rate, aht, threshold, patience=patience).service_level < target
    assert answer.agents >= answer.for_target
    assert answer.occupancy <= cap + 1e-9
    if answer.agents > answer.for_target:
        assert predict(answer.agents - 1, rate, aht, threshold, patience=patience).occupancy > cap


# ---------------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------------


def test_cli_prints_the_table_and_the_answer(capsys):
    assert (
        main_staffing(
            [
                "--calls",
                "100",
                "--per",
                "30m",
                "--aht",
                "180",
                "--target",
                "80/20",
                "--shrinkage",
                "0.3",
                "--max-occupancy",
                "0.7",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "load 10.00 Erlangs" in out
    assert "     14     88.8%      7.8      71.4%    17.4%  <- fewest for 80/20" in out
    assert "answer: 15 agents on the phones" in out
    assert "schedule 22 = ceil(15 / (1 - 0.3))" in out


def test_cli_erlang_a_shows_abandons(capsys):
    assert (
        main_staffing(
            ["--calls", "252", "--per", "1h", "--aht", "120", "--target", "80/20", "--patience", "60", "--agents", "12"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "P(abandon)" in out
    assert "     12     94.5%      1.4      67.9%    12.7%        3.0%  <- --agents" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--per", "20x"], "argument --per: allowed: a positive number with a unit s, m or h"),
        (["--target", "80"], "argument --target: allowed: PERCENT/SECONDS"),
        (["--target", "100/20"], "argument --target: allowed: PERCENT/SECONDS with 0 < PERCENT < 100"),
        (["--shrinkage", "1"], "argument --shrinkage: allowed: a fraction in [0, 1)"),
        (["--max-occupancy", "0"], "argument --max-occupancy: allowed: a fraction in (0, 1]"),
        (["--aht", "0"], "argument --aht: allowed: a number > 0"),
    ],
)
def test_cli_rejects_bad_arguments(capsys, args, message):
    base = {"--calls": "100", "--per": "30m", "--aht": "180", "--target": "80/20"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    with pytest.raises(SystemExit) as exit_info:
        main_staffing([part for pair in base.items() for part in pair])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
