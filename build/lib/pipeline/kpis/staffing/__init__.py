"""Staffing: Erlang C and Erlang A maths, the fewest agents for a service level target, and the planners' command.

Pure functions (no Kafka, Faust or Prometheus): the live pipeline and `python -m pipeline staffing` share them.
- `required_agents(rate_per_second, aht, threshold, target, *, patience, shrinkage, max_occupancy)` -> `Staffing`
- `predict(agents, rate_per_second, aht, threshold, *, patience)` -> `Prediction` (what the agents staffed now give)
- `erlang_b`, `erlang_c`, `service_level`, `asa`, `occupancy`, `erlang_a`: the formulas (docs/staffing.md).
"""

from pipeline.kpis.staffing.erlang import (
    ErlangA,
    Prediction,
    Staffing,
    asa,
    erlang_a,
    erlang_b,
    erlang_c,
    occupancy,
    predict,
    required_agents,
    service_level,
)

__all__ = [
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
]
