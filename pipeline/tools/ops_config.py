"""`python -m pipeline ops-config`: the generated monitoring files (rules, Prometheus and Alertmanager configs,
dashboards) written from the queue file."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.settings import QueueConfig, SettingsError
from pipeline.monitoring import alerting, dashboards, kubernetes


def main_ops_config(argv: list[str]) -> int:
    """`python -m pipeline ops-config`: rewrite deploy/ (rules, Prometheus, Alertmanager, Kubernetes) and grafana/."""
    parser = argparse.ArgumentParser(prog="python -m pipeline ops-config", description=main_ops_config.__doc__)
    parser.add_argument(
        "--queues", type=Path, default=alerting.DEPLOY / "queues.toml", help="queue file (deploy/queues.toml)"
    )
    parser.add_argument(
        "--runbook-url", default=alerting.RUNBOOK, help=f"base of every runbook_url (default {alerting.RUNBOOK})"
    )
    args = parser.parse_args(argv)
    try:
        config = QueueConfig.load(args.queues)
    except SettingsError as exc:
        print(exc.message)
        return 2
    written = [*alerting.write(config, runbook=args.runbook_url), *dashboards.write(config)]
    written += kubernetes.write(config, args.queues, runbook=args.runbook_url)  # deploy/kubernetes/base/generated
    for path in written:
        print(path)
    return 0
