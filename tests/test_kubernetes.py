"""deploy/kubernetes: the kustomize base and overlays render (`kubectl kustomize`, kustomize v5 inside kubectl), every
built-in resource passes the Kubernetes API schemas offline (kubernetes-validate, strict: no unknown field), the
generated parts are current, and the PrometheusRule holds exactly the rule files' groups (and passes promtool)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pipeline.core.settings import QueueConfig, load_settings
from pipeline.monitoring import alerting, kubernetes
from pipeline.runtime.transport import STOP_GRACE_SECONDS

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "kubernetes"
QUEUES_FILE = ROOT / "deploy" / "queues.toml"
KUBERNETES_VERSION = "1.30.0"  # the oldest minor release still supported by the big managed offerings
CRDS = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def _kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(overlay: str, tmp_path: Path) -> list[dict]:
    """The overlay rendered from a copy of deploy/kubernetes, with its uncommitted files made from the examples."""
    command = _kustomize()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: the manifests are checked file by file only")
    tree = tmp_path / "kubernetes"
    shutil.copytree(K8S, tree)
    for example in (tree / "overlays" / overlay).glob("*.example"):
        target = example.with_suffix("")
        if not target.exists():
            shutil.copy(example, target)
    done = subprocess.run([*command, str(tree / "overlays" / overlay)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _validate(resource: dict) -> None:
    if (resource["apiVersion"], resource["kind"]) in CRDS:
        return  # not in the Kubernetes schemas; checked by the tests below
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(
            f"{resource['kind']}/{resource['metadata']['name']}: {exc.message} at {list(exc.path)}"
        ) from None


def test_generated_files_are_current():
    config = QueueConfig.load(QUEUES_FILE)
    expected = kubernetes.generated_files(config, QUEUES_FILE.read_text())
    on_disk = {
        str(p.relative_to(kubernetes.GENERATED)): p.read_text() for p in kubernetes.GENERATED.rglob("*") if p.is_file()
    }
    assert on_disk == expected, "stale: run `python -m pipeline ops-config`"


def test_the_prometheus_rule_holds_the_rule_files_groups(tmp_path):
    text = (kubernetes.GENERATED / "prometheusrule.yaml").read_text()
    groups = kubernetes.rule_groups_of(text)
    from_files = []
    for name in ("recording.rules.yml", "alerts.rules.yml"):
        from_files += yaml.safe_load((alerting.DEPLOY / "prometheus" / "rules" / name).read_text())["groups"]
    assert groups == from_files
    if shutil.which("promtool"):
        rules = tmp_path / "rule.yml"
        rules.write_text(yaml.safe_dump({"groups": groups}))
        done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_base_file_passes_the_kubernetes_schemas():
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for resource in yaml.safe_load_all(path.read_text()):
            _validate(resource)


@pytest.mark.parametrize("overlay", ["production", "local"])
def test_overlays_render_and_pass_the_kubernetes_schemas(overlay, tmp_path):
    resources = render(overlay, tmp_path)
    kinds = sorted({r["kind"] for r in resources})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PodDisruptionBudget",
        "PodMonitor",
        "PrometheusRule",
        "Secret",
        "ServiceAccount",
    ]
    for r in resources:
        _validate(r)
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    namespace = next(r["metadata"]["name"] for r in resources if r["kind"] == "Namespace")
    assert all(r["metadata"].get("namespace") == namespace for r in resources if r["kind"] != "Namespace")

    deployment = next(r for r in resources if r["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    # every ConfigMap and Secret the pod names exists (optional ones aside)
    for ref in worker["envFrom"]:
        kind, ref_name = (
            ("ConfigMap", ref["configMapRef"]["name"])
            if "configMapRef" in ref
            else ("Secret", ref["secretRef"]["name"])
        )
        assert (kind, ref_name) in names
    for volume in pod["volumes"]:
        if "configMap" in volume and not volume["configMap"].get("optional"):
            assert ("ConfigMap", volume["configMap"]["name"]) in names
        if "secret" in volume:
            assert ("Secret", volume["secret"]["secretName"]) in names
    monitor = next(r for r in resources if r["kind"] == "PodMonitor")
    assert ("Secret", monitor["spec"]["podMetricsEndpoints"][0]["basicAuth"]["password"]["name"]) in names

    # probes on the health pages, graceful termination longer than the worker's own hard stop (and a checkpoint)
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert worker["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert pod["terminationGracePeriodSeconds"] > STOP_GRACE_SECONDS > load_settings().checkpoint_seconds
    assert worker["resources"]["requests"]["memory"] and worker["resources"]["limits"]["memory"]
    assert pod["affinity"]["podAntiAffinity"]
    # the PDB, the PodMonitor and the anti-affinity select exactly the Deployment's pods
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = next(r for r in resources if r["kind"] == "PodDisruptionBudget")
    for selector in (pdb["spec"]["selector"]["matchLabels"], monitor["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert labels[monitor["spec"]["jobLabel"]] == alerting.JOB  # job="cc-kpi-pipeline", as rules and dashboards read
    dashboards = [
        r
        for r in resources
        if r["kind"] == "ConfigMap" and r["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    ]
    assert len(dashboards) == len(list((ROOT / "grafana" / "dashboards").glob("*.json")))
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["PIPELINE_ENV"] == ("production" if overlay == "production" else "development")
    assert env["PIPELINE_WEB_CONFIG_FILE"]


def test_the_production_overlay_satisfies_the_production_profile(tmp_path, monkeypatch):
    """Its settings, as the pod gets them (kafka.env, the secrets, the Deployment's env), pass `PIPELINE_ENV=production`."""
    from pipeline.runtime.startup import production_problems
    from pipeline.runtime.webconfig import WebConfig

    resources = render("production", tmp_path)
    worker = next(r for r in resources if r["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for r in resources:
        if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith("cc-kpi-kafka"):
            env.update(r["data"])
    for r in resources:
        if r["kind"] == "Secret" and r["metadata"]["name"].startswith("cc-kpi-secrets"):
            env.update({k: base64.b64decode(v).decode() for k, v in r["data"].items()})
    env.update({e["name"]: e["value"] for e in worker["env"] if "value" in e})
    for var in [v for v in os.environ if v.startswith("PIPELINE_")]:
        monkeypatch.delenv(var)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PIPELINE_WEB_CONFIG_FILE")  # a path inside the pod; its users are checked below
    monkeypatch.delenv("PIPELINE_QUEUES_FILE")
    settings = load_settings()
    assert settings.env == "production" and settings.kafka_security_protocol == "SASL_SSL"
    web = yaml.safe_load((K8S / "overlays" / "production" / "web-config.yml.example").read_text())
    assert (
        production_problems(settings, WebConfig(users={u: h.encode() for u, h in web["basic_auth_users"].items()}))
        == []
    )
