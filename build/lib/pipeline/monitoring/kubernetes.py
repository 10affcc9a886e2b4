"""deploy/kubernetes/base/generated/: what the Kubernetes manifests take from the same sources as deploy/ and grafana/.

- `prometheusrule.yaml`: a Prometheus Operator `PrometheusRule` holding exactly the groups of the rule files
  (`alerting.recording_groups` and `alerting.alert_groups`), so Kubernetes and the rule files never drift;
- `dashboards/*.json` and a `configMapGenerator` for them: one ConfigMap per dashboard, labelled for Grafana's
  dashboard sidecar (`grafana_dashboard: "1"`, as the kube-prometheus-stack and Grafana charts watch by default);
- `queues.toml` and a `configMapGenerator` for it: the queue file the workers read (a change rolls the workers,
  since kustomize names the ConfigMap after its content).

Kustomize reads files under its own directory only, hence the copies. Written by `python -m pipeline ops-config`;
a test fails when they are stale.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.core.settings import QueueConfig
from pipeline.monitoring import alerting, dashboards

GENERATED = alerting.DEPLOY / "kubernetes" / "base" / "generated"
SOURCE = "deploy/queues.toml, pipeline/monitoring"


def _yaml(data: dict) -> str:
    return alerting.dump(data, source=SOURCE)


def prometheus_rule(config: QueueConfig, runbook: str = alerting.RUNBOOK) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "cc-kpi-rules"},
        "spec": {"groups": alerting.recording_groups(config) + alerting.alert_groups(runbook=runbook)},
    }


def generated_files(config: QueueConfig, queues_text: str, runbook: str = alerting.RUNBOOK) -> dict[str, str]:
    """Relative path under deploy/kubernetes/base/generated -> content."""
    boards = dashboards.rendered(config)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["prometheusrule.yaml"],
        "configMapGenerator": [
            {"name": "cc-kpi-queues", "files": ["queues.toml"]},
            *(
                {
                    "name": f"cc-kpi-dashboard-{name.removesuffix('.json')}",
                    "files": [f"dashboards/{name}"],
                    "options": {
                        "disableNameSuffixHash": True,  # Grafana's sidecar reads any name; stable names diff better
                        "labels": {"grafana_dashboard": "1"},
                        "annotations": {"grafana_folder": "Contact center"},
                    },
                }
                for name in sorted(boards)
            ),
        ],
    }
    files = {
        "kustomization.yaml": _yaml(kustomization),
        "prometheusrule.yaml": _yaml(prometheus_rule(config, runbook)),
        "queues.toml": queues_text,
    }
    files.update({f"dashboards/{name}": text for name, text in boards.items()})
    return files


def write(
    config: QueueConfig, queues_file: Path, root: Path = GENERATED, runbook: str = alerting.RUNBOOK
) -> list[Path]:
    written = []
    for rel, text in generated_files(config, queues_file.read_text(), runbook).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def rule_groups_of(prometheus_rule_text: str) -> list[dict]:
    """The rule groups of a rendered PrometheusRule (tests compare them with the rule files)."""
    return yaml.safe_load(prometheus_rule_text)["spec"]["groups"]
