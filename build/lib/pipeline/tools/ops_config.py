"""`python -m pipeline ops-config`: the generated monitoring files (rules, Prometheus and Alertmanager configs,
dashboards) written from the queue file."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.core.settings import QueueConfig, SettingsError, load_settings
from pipeline.monitoring import alerting, dashboards, kubernetes


def main_ops_config(argv: list[str]) -> int:
    """`python -m pipeline ops-config`: rewrite deploy/ (rules, Prometheus, Alertmanager, Kubernetes) and grafana/."""
    parser = argparse.ArgumentParser(prog="python -m pipeline ops-config", description=main_ops_config.__doc__)
    parser.add_argument(
        "--queues", type=Path, default=alerting.DEPLOY / "queues.toml", help="queue file (deploy/queues.toml)"
    )
    parser.add_argument(
        "--runbook-url", help="base of every runbook_url (default: PIPELINE_RUNBOOK_URL, docs/settings.md)"
    )
    args = parser.parse_args(argv)
    try:
        # the option is checked like the setting it overrides
        runbook = load_settings(**({"runbook_url": args.runbook_url} if args.runbook_url else {})).runbook_url
        config = QueueConfig.load(args.queues)
    except SettingsError as exc:
        print(exc.message)
        return 2
    written = [*alerting.write(config, runbook=runbook), *dashboards.write(config)]
    written += kubernetes.write(config, args.queues, runbook=runbook)  # deploy/kubernetes/base/generated
    for path in written:
        print(path)
    return 0
