"""Staffing maths: Erlang B, Erlang C (M/M/n) and Erlang A (M/M/n+M), and the fewest agents that meet a target.

Pure functions of numbers: no Kafka, Faust, Prometheus or settings here (only the KPI definitions' names), so the live pipeline, the planners'
command line and the tests all use the same code. Units: seconds and contacts per second; a load is in
Erlangs (arrival rate x AHT). The formulas and definitions are in docs/staffing.md.

Numerics: no factorials and no powers of the load. Erlang B comes from its stable recursion
B(n) = A B(n-1) / (n + A B(n-1)), which stays in [0, 1] for any load; Erlang C and the Erlang A distribution
are built from it, and the Erlang A queue tail is summed with a scale taken from its (known) largest term, so
loads of thousands of Erlangs and thousands of agents neither overflow nor lose precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.kpis.definitions import VARIANTS, Variant  # the variant names are defined once, with the KPIs

__all__ = [
    "VARIANTS",
    "ErlangA",
    "Prediction",
    "Staffing",
    "asa",
    "erlang_a",
    "erlang_b",
    "erlang_c",
    "occupancy",
    "predict",
    "required_agents",
    "service_level",
    "Variant",
]

# Below e^-700 a double is near its underflow limit: terms that small are carried as logarithms.
_LOG_TINY = -700.0
# Relative size below which the rest of a convergent tail sum is dropped (below double precision).
_TAIL_EPS = 1e-17
# Agents are whole people; a ratio like 14 / 0.7 = 20.000000000000004 must not round up to 21.
_CEIL_SLACK = 1e-9


def _ceil(value: float) -> int:
    return math.ceil(value - _CEIL_SLACK)


def _check_agents_load(agents: int, load: float) -> None:
    if agents < 0 or int(agents) != agents:
        raise ValueError(f"agents must be a whole number >= 0, got {agents!r}")
    if not (load >= 0 and math.isfinite(load)):
        raise ValueError(f"load must be a finite number of Erlangs >= 0, got {load!r}")


# ---------------------------------------------------------------------------------------------------------------
# Erlang B and C
# ---------------------------------------------------------------------------------------------------------------


def erlang_b(agents: int, load: float) -> float:
    """Erlang B: the probability that all `agents` are busy in an M/M/n/n loss system offered `load` Erlangs."""
    _check_agents_load(agents, load)
    b = 1.0
    for n in range(1, int(agents) + 1):
        ab = load * b
        b = ab / (n + ab)
    return b


def _c_from_b(agents: int, load: float, b: float) -> float:
    if load == 0:
        return 0.0
    if agents <= load:
        return 1.0
    return agents * b / (agents - load * (1.0 - b))


def erlang_c(agents: int, load: float) -> float:
    """Erlang C: the probability that a contact waits (M/M/n, infinite patience); 1.0 when agents <= load."""
    _check_agents_load(agents, load)
    if load == 0:
        return 0.0
    if agents <= load:
        return 1.0
    return _c_from_b(agents, load, erlang_b(agents, load))


def _sl_c(agents: int, load: float, aht: float, threshold: float, p_wait: float) -> float:
    if load == 0:
        return 1.0
    if agents <= load:
        return 0.0
    return 1.0 - p_wait * math.exp(-(agents - load) * threshold / aht)


def service_level(agents: int, load: float, aht: float, threshold: float) -> float:
    """Erlang C service level: the share of contacts answered within `threshold` seconds.

    SL(T) = 1 - C(n, A) e^(-(n - A) T / AHT); 0.0 when agents <= load (the queue grows without bound).
    """
    _check_positive("aht", aht)
    _check_not_negative("threshold", threshold)
    return _sl_c(agents, load, aht, threshold, erlang_c(agents, load))


def asa(agents: int, load: float, aht: float) -> float:
    """Erlang C average speed of answer (mean wait in queue), seconds: C(n, A) AHT / (n - A); inf when unstable."""
    _check_positive("aht", aht)
    p_wait = erlang_c(agents, load)
    if load == 0:
        return 0.0
    if agents <= load:
        return math.inf
    return p_wait * aht / (agents - load)


def occupancy(agents: int, load: float) -> float:
    """Share of the agents' time spent on contacts: load / agents, at most 1 (0 agents and no load: 0)."""
    _check_agents_load(agents, load)
    if load == 0:
        return 0.0
    if agents <= load:
        return 1.0
    return load / agents


def _check_positive(name: str, value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_not_negative(name: str, value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Erlang A
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErlangA:
    """Steady state of M/M/n+M (Erlang A): exponential service, exponential patience, first come first served.

    Probabilities are per offered contact (an arrival sees the stationary state, PASTA):
    - `p_wait`: finds every agent busy and queues;
    - `p_abandon`: abandons before being answered;
    - `service_level`: in the pipeline's named variant (docs/kpis.md), with A(T) = P(answered with wait <= T)
      and Ab(s) = P(abandoned after waiting <= s):
      abandons_against A(T) (over all offered), abandons_ignored A(T) / (1 - p_abandon),
      short_abandons_excluded A(T) / (1 - Ab(short)), abandons_in_favour A(T) + Ab(T);
    - `asa`: mean wait of the answered contacts (seconds);
    - `mean_wait`: mean time in queue over all offered, abandoners included (= E[queue length] / arrival rate);
    - `occupancy`: carried load / agents = load (1 - p_abandon) / agents.
    """

    p_wait: float
    p_abandon: float
    service_level: float
    asa: float
    mean_wait: float
    occupancy: float


def erlang_a(
    agents: int,
    load: float,
    aht: float,
    patience: float,
    threshold: float,
    *,
    variant: Variant = "abandons_against",
    short_abandon_seconds: float = 5.0,
) -> ErlangA:
    """Erlang A (Palm; Garnett, Mandelbaum and Reiman 2002): M/M/n+M with mean patience `patience` seconds.

    Stable for any number of agents (customers leave), so also for agents <= load.
    """
    _check_agents_load(agents, load)
    _check_positive("aht", aht)
    _check_positive("patience", patience)
    _check_not_negative("threshold", threshold)
    _check_variant(variant, short_abandon_seconds)
    return _erlang_a(
        int(agents), load, aht, patience, threshold, erlang_b(agents, load), variant, short_abandon_seconds
    )


def _check_variant(variant: str, short_abandon_seconds: float) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    _check_not_negative("short_abandon_seconds", short_abandon_seconds)


class _NegBinCdf:
    """Running sum over j = 0, 1, ... of x^a (a)_j / j! (1 - x)^j (negative binomial terms), x = e^-z.

    Its value after m steps is the incomplete beta function I_x(a, m + 1) = P(Beta(a, m + 1) <= x). Terms
    below e^-700 (a large, x small) are carried as logarithms until they matter, so nothing underflows early.
    """

    __slots__ = ("a", "y", "j", "log_p", "p", "in_log", "cdf")

    def __init__(self, a: float, z: float) -> None:
        self.a = a
        self.y = -math.expm1(-z)  # 1 - x, accurate for small z
        self.j = 0
        self.log_p = -a * z
        self.p = math.exp(self.log_p) if self.log_p > _LOG_TINY else 0.0
        self.in_log = self.p == 0.0 and self.log_p > -math.inf
        self.cdf = self.p

    def advance(self) -> float:
        self.j += 1
        step = (self.a + self.j - 1) / self.j * self.y
        if self.in_log:
            if step == 0.0:
                self.in_log = False
                return self.cdf
            self.log_p += math.log(step)
            if self.log_p > _LOG_TINY:
                self.p = math.exp(self.log_p)
                self.in_log = False
                self.cdf += self.p
        else:
            self.p *= step
            self.cdf += self.p
        return self.cdf


def _erlang_a(
    n: int,
    load: float,
    aht: float,
    patience: float,
    threshold: float,
    b: float,
    variant: Variant = "abandons_against",
    short_abandon_seconds: float = 0.0,
) -> ErlangA:
    """Erlang A given B = erlang_b(n, load).

    Conditioned on queueing, an arrival that finds m contacts ahead of it in the queue is answered when it has
    moved up m + 1 places before its own patience runs out. With c = n mu / theta (mu = 1/AHT, theta =
    1/patience), with i contacts ahead it leaves that place at rate theta (c + i + 1): forward with probability
    (c + i) / (c + i + 1), by abandoning otherwise. Its offered wait V (the wait if it never gave up) is a sum
    of exponentials with rates theta (c + i), i = 0..m, so e^(-theta V) is Beta(c, m + 1) distributed. Hence
      P(answered | m)              = c / (c + m + 1)
      E[wait | answered, m]        = (1/theta) sum_{i=0..m} 1 / (c + 1 + i)
      P(answered, wait <= T | m)   = c / (c + m + 1) (1 - I_x(c + 1, m + 1)),  x = e^(-theta T)
      P(still queued at T | m)     = P(patience > T) P(V > T) = x I_x(c, m + 1)
    and an abandon within s is a departure within s that is not an answer within s.
    The number queued m, as an arrival that queues sees it, has weights
      t_m = prod_{j=1..m} lambda / (n mu + j theta) = (lambda/theta)^m Gamma(c + 1) / Gamma(c + m + 1).
    """
    if load == 0:
        return ErlangA(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    if n == 0:  # everyone queues and abandons; only abandons_in_favour counts those within T as served in time
        in_favour = -math.expm1(-threshold / patience) if variant == "abandons_in_favour" else 0.0
        return ErlangA(1.0, 1.0, in_favour, math.inf, patience, 0.0)
    mu = 1.0 / aht
    theta = 1.0 / patience
    c = n * mu / theta  # = n * patience / aht
    r = load * patience / aht  # lambda / theta

    # The weights rise while lambda > n mu + j theta, i.e. up to j* = floor(r - c); scale them by the largest.
    peak = max(0, math.floor(r - c))
    log_peak = peak * math.log(r) + math.lgamma(c + 1.0) - math.lgamma(c + peak + 1.0) if peak else 0.0
    # Weight t_m / t_peak, carried as a logarithm while it is below e^-700.
    log_t = -log_peak
    t = math.exp(log_t) if log_t > _LOG_TINY else 0.0
    in_log = t == 0.0

    # P(wait > T | answered, m) = I_x(c + 1, m + 1): a running sum of negative binomial terms (see _NegBinCdf,
    # inlined here because this loop is the cost of Erlang A), carried as a logarithm while below e^-700.
    z = theta * threshold
    y = -math.expm1(-z)  # 1 - x, accurate for small theta T
    log_p = -(c + 1.0) * z
    p = math.exp(log_p) if log_p > _LOG_TINY else 0.0
    p_in_log = p == 0.0 and y > 0.0
    late = p
    # The other variants need more sums; they are rarer, so they use the slower helper.
    waiting = _NegBinCdf(c, z) if variant == "abandons_in_favour" else None  # I_x(c, m + 1)
    x = 1.0 - y
    short = variant == "short_abandons_excluded"
    z_s = theta * short_abandon_seconds
    late_s = _NegBinCdf(c + 1.0, z_s) if short else None
    waiting_s = _NegBinCdf(c, z_s) if short else None
    x_s = math.exp(-z_s)
    extra = waiting is not None or short

    harmonic = 1.0 / (c + 1.0)  # sum_{i=0..m} 1/(c+1+i)
    total = answered = answered_in_time = answered_wait = left_in_time = short_abandons = 0.0
    m = 0
    while True:
        if not in_log:
            served = t * c / (c + m + 1.0)
            total += t
            answered += served
            if late < 1.0:
                answered_in_time += served * (1.0 - late)
            answered_wait += served * harmonic
            if extra:
                if waiting is not None:
                    left_in_time += t * (1.0 - x * min(1.0, waiting.cdf))
                if late_s is not None and waiting_s is not None:
                    in_time_s = served * max(0.0, 1.0 - late_s.cdf)
                    short_abandons += max(0.0, t * (1.0 - x_s * min(1.0, waiting_s.cdf)) - in_time_s)
        m += 1
        ratio = r / (c + m)
        if in_log:
            log_t += math.log(ratio)
            if log_t > _LOG_TINY:
                t = math.exp(log_t)
                in_log = False
        else:
            t *= ratio
            # Past the peak the ratios fall, so the rest of the tail is below t ratio / (1 - ratio).
            if m > peak and t * ratio < _TAIL_EPS * total * (1.0 - ratio):
                break
        harmonic += 1.0 / (c + 1.0 + m)
        if p_in_log:
            log_p += math.log((c + m) / m * y)
            if log_p > _LOG_TINY:
                p = math.exp(log_p)
                p_in_log = False
                late += p
        else:
            p *= (c + m) / m * y
            late += p
        if extra:
            if waiting is not None:
                waiting.advance()
            if late_s is not None and waiting_s is not None:
                late_s.advance()
                waiting_s.advance()

    # P(wait) = B R / (1 - B + B R), R = sum of the unscaled weights = total e^log_peak (maybe beyond doubles).
    # With L = log((1 - B) / (B R)): P(wait) = 1 / (1 + e^L) and P(no wait) = 1 / (1 + e^-L), each to full
    # precision (1 - P(wait) would lose the small values of P(no wait) in heavily loaded queues).
    if b == 0.0:
        p_wait, p_no_wait = 0.0, 1.0
    elif b == 1.0:
        p_wait, p_no_wait = 1.0, 0.0
    else:
        log_ratio = math.log1p(-b) - math.log(b) - math.log(total) - log_peak
        p_wait = 1.0 / (1.0 + math.exp(log_ratio)) if log_ratio < 700 else 0.0
        p_no_wait = 1.0 / (1.0 + math.exp(-log_ratio)) if log_ratio > -700 else 0.0
    p_answered = p_no_wait + p_wait * answered / total
    p_abandon = p_wait * (1.0 - answered / total)
    within = p_no_wait + p_wait * answered_in_time / total  # answered within T, over all offered
    if variant == "abandons_against":
        sl = within
    elif variant == "abandons_ignored":
        sl = within / p_answered if p_answered > 0 else 0.0
    elif variant == "abandons_in_favour":
        sl = p_no_wait + p_wait * left_in_time / total
    else:
        counted = 1.0 - p_wait * short_abandons / total
        sl = within / counted if counted > 0 else 0.0
    asa_answered = p_wait * answered_wait / total / theta / p_answered if p_answered > 0 else math.inf
    # Little's law for the queue: theta E[Lq] = lambda P(abandon), so the mean wait of all offered,
    # E[Lq] / lambda, is P(abandon) / theta.
    return ErlangA(
        p_wait=p_wait,
        p_abandon=p_abandon,
        service_level=min(1.0, max(0.0, sl)),
        asa=asa_answered,
        mean_wait=p_abandon / theta,
        occupancy=min(1.0, load * (1.0 - p_abandon) / n) if n else 0.0,
    )


# ---------------------------------------------------------------------------------------------------------------
# Predictions and required agents
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prediction:
    """What a number of agents on the phones gives at an arrival rate and AHT (steady state of the interval).

    `model` is "erlang_c" (nobody abandons) or "erlang_a" (exponential patience). Under Erlang C `p_abandon` is
    0, every service level variant is the same number, and with agents <= load `service_level` is 0 and `asa`
    inf (the queue never empties). `service_level` is in the variant asked for (see `ErlangA`).
    """

    agents: int
    load: float
    service_level: float
    asa: float
    occupancy: float
    p_wait: float
    p_abandon: float
    model: str


@dataclass(frozen=True, slots=True)
class Staffing:
    """The fewest agents that meet a service level target, and what they give.

    - `agents`: on the phones (productive): the fewest that meet both the target and the occupancy cap;
    - `scheduled`: agents to schedule so that `agents` remain after shrinkage, ceil(agents / (1 - shrinkage));
    - `for_target`: agents the service level target alone needs; `limited_by` says which bound set `agents`
      ("target", "occupancy cap", or "no load");
    - the rest is the `Prediction` for `agents`.
    """

    agents: int
    scheduled: int
    for_target: int
    limited_by: str
    load: float
    service_level: float
    asa: float
    occupancy: float
    p_wait: float
    p_abandon: float
    model: str


@dataclass(frozen=True, slots=True)
class _Queue:
    """One queue's traffic and definitions, checked once; `patience` None means Erlang C."""

    load: float
    aht: float
    threshold: float
    patience: float | None
    variant: Variant
    short_abandon_seconds: float

    def predict(self, n: int, b: float) -> Prediction:
        """The prediction for n agents, given B = erlang_b(n, load)."""
        load = self.load
        if self.patience is None:
            p_wait = _c_from_b(n, load, b)
            if load == 0:
                wait = 0.0
            elif n <= load:
                wait = math.inf
            else:
                wait = p_wait * self.aht / (n - load)
            sl = _sl_c(n, load, self.aht, self.threshold, p_wait)
            occ = 0.0 if load == 0 else (1.0 if n <= load else load / n)
            return Prediction(n, load, sl, wait, occ, p_wait, 0.0, "erlang_c")
        a = _erlang_a(n, load, self.aht, self.patience, self.threshold, b, self.variant, self.short_abandon_seconds)
        return Prediction(n, load, a.service_level, a.asa, a.occupancy, a.p_wait, a.p_abandon, "erlang_a")


def _queue(
    rate_per_second: float,
    aht: float,
    threshold: float,
    patience: float | None,
    variant: Variant,
    short_abandon_seconds: float,
) -> _Queue:
    _check_not_negative("rate_per_second", rate_per_second)
    _check_positive("aht", aht)
    _check_not_negative("threshold", threshold)
    _check_variant(variant, short_abandon_seconds)
    if patience is not None and patience != math.inf:
        _check_positive("patience", patience)
    else:
        patience = None
    load = rate_per_second * aht
    _check_agents_load(0, load)
    return _Queue(load, aht, threshold, patience, variant, short_abandon_seconds)


def predict(
    agents: int,
    rate_per_second: float,
    aht: float,
    threshold: float,
    *,
    patience: float | None = None,
    variant: Variant = "abandons_against",
    short_abandon_seconds: float = 5.0,
) -> Prediction:
    """Service level, ASA, occupancy, P(wait) and P(abandon) with `agents` on the phones.

    Erlang C when `patience` is None (or inf), Erlang A with exponential patience of that mean (seconds)
    otherwise; `variant` and `short_abandon_seconds` as in the queue file (they only matter under Erlang A).
    """
    queue = _queue(rate_per_second, aht, threshold, patience, variant, short_abandon_seconds)
    _check_agents_load(agents, queue.load)
    return queue.predict(int(agents), erlang_b(agents, queue.load))


class _BTable:
    """Erlang B values for n = 0, 1, ... at one load, extended on demand (the recursion only goes up)."""

    __slots__ = ("load", "values")

    def __init__(self, load: float) -> None:
        self.load = load
        self.values = [1.0]

    def __getitem__(self, n: int) -> float:
        values = self.values
        b = values[-1]
        load = self.load
        for k in range(len(values), n + 1):
            ab = load * b
            b = ab / (k + ab)
            values.append(b)
        return values[n]


def _fewest_erlang_c(load: float, aht: float, threshold: float, target: float) -> int:
    """Fewest agents with Erlang C SL >= target: SL rises with agents, so step up from just above the load."""
    n = math.floor(load)
    b = erlang_b(n, load)
    decay = threshold / aht
    while True:
        n += 1
        ab = load * b
        b = ab / (n + ab)
        p_wait = n * b / (n - load * (1.0 - b))
        if 1.0 - p_wait * math.exp(-(n - load) * decay) >= target:
            return n


def _fewest_erlang_a(queue: _Queue, target: float, table: _BTable) -> tuple[int, Prediction]:
    """Fewest agents with Erlang A SL >= target, and its prediction (SL rises with agents)."""
    predictions: dict[int, Prediction] = {}

    def meets(n: int) -> bool:
        if n not in predictions:
            predictions[n] = queue.predict(n, table[n])
        return predictions[n].service_level >= target

    if meets(0):  # only under abandons_in_favour: abandons within T count as served in time
        return 0, predictions[0]

    def miss(n: int) -> float:
        """log(1 - SL): close to linear in agents (1 - SL falls about geometrically), so secant steps land near."""
        meets(n)
        return math.log(max(1.0 - predictions[n].service_level, 1e-300))

    goal = math.log(1.0 - target)
    # Patient customers make Erlang A close to Erlang C: start at Erlang C's answer and the agent below it
    # (often the answer), then take secant steps in log(1 - SL), keeping a bracket: not meets(lo), and
    # meets(hi) once hi > 0 (before that, gallop up).
    lo, hi = 0, max(1, _fewest_erlang_c(queue.load, queue.aht, queue.threshold, target))
    if not meets(hi):
        lo, hi = hi, 0
    a, b = lo or hi, (lo or hi) - 1  # the two latest points, for the secant
    steps = 0
    while hi == 0 or hi - lo > 1:
        steps += 1
        guess = b
        if steps > 12 and hi:  # a safeguard: SL bends too much for secant steps here, so bisect
            guess = (lo + hi) // 2
        elif a != b and b >= 0 and miss(a) != miss(b):
            estimate = b + (goal - miss(b)) * (a - b) / (miss(a) - miss(b))
            if math.isfinite(estimate):
                guess = round(estimate)
        if hi == 0:
            probe = max(guess, lo + 1, lo + (lo + 1) // 8)  # gallop up by at least an eighth
        else:
            probe = min(max(guess, lo + 1), hi - 1)
        a, b = b, probe
        if meets(probe):
            hi = probe
        else:
            lo = probe
    return hi, predictions[hi]


def required_agents(
    rate_per_second: float,
    aht: float,
    threshold: float,
    target: float,
    *,
    patience: float | None = None,
    shrinkage: float = 0.0,
    max_occupancy: float = 1.0,
    variant: Variant = "abandons_against",
    short_abandon_seconds: float = 5.0,
) -> Staffing:
    """The fewest agents on the phones for `target` of contacts answered within `threshold` seconds.

    - `rate_per_second`: arrival rate of the interval; `aht`: average handle time, seconds;
    - `target`: service level as a fraction in (0, 1) (0.8 for 80/20; 1 would need infinitely many agents);
    - `patience`: mean patience in seconds for Erlang A, or None (or inf) for Erlang C (nobody abandons);
    - `shrinkage`: share of scheduled time not on the phones (breaks, training...), in [0, 1);
    - `max_occupancy`: occupancy cap in (0, 1]: agents are added until occupancy is at most this;
    - `variant`, `short_abandon_seconds`: the queue's service level definition (docs/kpis.md); under Erlang C
      nobody abandons and every variant is the same.
    No load gives 0 agents: nobody is needed to answer nobody (a minimum staffing rule is a business choice).
    """
    queue = _queue(rate_per_second, aht, threshold, patience, variant, short_abandon_seconds)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target must be a fraction in (0, 1), got {target!r}")
    if not 0.0 <= shrinkage < 1.0:
        raise ValueError(f"shrinkage must be a fraction in [0, 1), got {shrinkage!r}")
    if not 0.0 < max_occupancy <= 1.0:
        raise ValueError(f"max_occupancy must be a fraction in (0, 1], got {max_occupancy!r}")
    load = queue.load
    if load == 0:
        p = queue.predict(0, 1.0)
        return Staffing(0, 0, 0, "no load", 0.0, p.service_level, p.asa, p.occupancy, p.p_wait, p.p_abandon, p.model)

    table = _BTable(load)
    if queue.patience is None:
        for_target = _fewest_erlang_c(load, aht, threshold, target)
        # Erlang C occupancy is load / n: the cap needs n >= load / cap outright.
        n = max(for_target, _ceil(load / max_occupancy))
        prediction = queue.predict(n, table[n])
    else:
        for_target, prediction = _fewest_erlang_a(queue, target, table)
        n = for_target
        # Erlang A occupancy is the carried load / n; more agents carry more (fewer abandon), so step up.
        while prediction.occupancy > max_occupancy + _CEIL_SLACK:
            n = max(n + 1, _ceil(load * (1.0 - prediction.p_abandon) / max_occupancy))
            prediction = queue.predict(n, table[n])
    return Staffing(
        agents=n,
        scheduled=_ceil(n / (1.0 - shrinkage)),
        for_target=for_target,
        limited_by="target" if n == for_target else "occupancy cap",
        load=load,
        service_level=prediction.service_level,
        asa=prediction.asa,
        occupancy=prediction.occupancy,
        p_wait=prediction.p_wait,
        p_abandon=prediction.p_abandon,
        model=prediction.model,
    )
