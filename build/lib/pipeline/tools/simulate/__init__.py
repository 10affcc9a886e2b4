"""Traffic simulator: a seeded discrete-event simulation of a contact center that emits contract events.

- `simulate(config, seed)`: the events of one simulated period, in time order, deterministic.
- `paced(events, speed)`: replay them in batches at a multiple of real time, for live demos.
- `write_jsonl` / `read_jsonl`: event logs as JSON Lines.
- `main_simulate(argv)`: the command line (`python -m pipeline.tools.simulate --help`).
"""

from pipeline.tools.simulate.center import simulate
from pipeline.tools.simulate.cli import main_simulate
from pipeline.tools.simulate.config import (
    ALL_CHANNEL_QUEUES,
    DEFAULT_QUEUES,
    CenterConfig,
    QueueSpec,
    intraday_load,
    with_all_channels,
)
from pipeline.tools.simulate.jsonl import read_jsonl, write_jsonl
from pipeline.tools.simulate.pacing import paced

__all__ = [
    "ALL_CHANNEL_QUEUES",
    "DEFAULT_QUEUES",
    "CenterConfig",
    "QueueSpec",
    "intraday_load",
    "main_simulate",
    "paced",
    "read_jsonl",
    "simulate",
    "with_all_channels",
    "write_jsonl",
]
