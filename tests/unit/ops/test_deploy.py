"""The production manifests, alert rules and dashboard name only what the worker exports."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from streams.ops.metrics import WorkerMetrics

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "production"
METRIC = re.compile(r"\bmakegood_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}


def exported() -> set[str]:
    """Every series name the worker can export (labelled metrics export no sample until used,
    so the names come from each family's type)."""
    names = set()
    for family in WorkerMetrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def _alert_exprs() -> list[str]:
    doc = yaml.safe_load((DEPLOY / "alerts.yaml").read_text())
    return [rule["expr"] for group in doc["spec"]["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_every_metric_the_alerts_name_is_exported():
    names = {m for expr in _alert_exprs() for m in METRIC.findall(expr)}
    assert names and names <= exported(), sorted(names - exported())


def test_every_metric_the_dashboard_names_is_exported():
    names = {m for expr in _dashboard_exprs() for m in METRIC.findall(expr)}
    assert names and names <= exported(), sorted(names - exported())


def test_the_alerts_cover_lag_dead_letters_readiness_and_redis():
    alerts = " ".join(_alert_exprs())
    for needed in ("makegood_consumer_lag_records", "makegood_dead_letters_total", "makegood_ready",
                   'makegood_dependency_up{dependency="redis"}'):
        assert needed in alerts, needed


def test_metric_names_follow_prometheus_conventions():
    for family in WorkerMetrics().registry.collect():
        assert family.name.startswith("makegood_"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        assert "id" not in {label for s in family.samples for label in s.labels}


def test_the_deployment_probes_and_scrapes_the_metrics_port():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "worker-deployment.yaml").read_text())}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    (port,) = [p for p in container["ports"] if p["name"] == "metrics"]
    assert str(port["containerPort"]) == docs["ConfigMap"]["data"]["MAKEGOOD_METRICS_PORT"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    (endpoint,) = docs["PodMonitor"]["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert docs["PodMonitor"]["spec"]["selector"]["matchLabels"] == \
        docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
