"""The HTTP endpoint and the metrics a worker's observer counts, with no broker."""
from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from processors.model import Source
from streams.decide.outputs import DeadLetter
from streams.errors import Stage
from streams.ops.health import Health
from streams.ops.http import OpsServer
from streams.ops.metrics import WorkerMetrics
from streams.worker.observe import Observer
from streams.worker.watch import progress_line


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_endpoint_serves_metrics_liveness_and_readiness_on_a_free_port():
    metrics = WorkerMetrics()
    health = Health(["kafka"])
    server = OpsServer("127.0.0.1", 0, health, metrics.exposition).start()
    try:
        assert server.port > 0
        status, body = _get(server.port, "/readyz")
        assert status == 503 and json.loads(body) == {"ready": False, "not_ready": ["kafka: starting"]}
        health.set("kafka", True)
        assert _get(server.port, "/readyz") == (200, '{"ready": true, "not_ready": []}\n')
        assert _get(server.port, "/healthz")[0] == 200
        metrics.count_consumed("entitlement.states.v1", 7)
        status, text = _get(server.port, "/metrics")
        assert status == 200 and 'makegood_records_consumed_total{topic="entitlement.states.v1"} 7.0' in text
        assert _get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


class _Remedy:
    def __init__(self, action: str, amount: int | None):
        self.action = type("A", (), {"value": action})()
        self.amount_krw = amount


def test_the_observer_counts_outputs_once_and_logs_dead_letters_without_their_payload(caplog):
    obs = Observer(namespace="ns1")
    dl = DeadLetter(Source("ns1.damage.reports.v1", 3, 1234), b"reporter-42", b"secret-body alice@example.com",
                    Stage.VALIDATE, "InvalidRecord", "claimed_loss_krw 1000000000000000 is absurd")
    outputs = [("r1", "remedy.actions.v1", "u1", _Remedy("EXTEND", None)),
               ("r2", "remedy.actions.v1", "u2", _Remedy("CREDIT", 2_100)),
               ("r3", "remedy.actions.v1", "u3", _Remedy("CREDIT", 900)),
               ("dl", "remedy.deadletter.v1", "reporter-42", dl)]
    with caplog.at_level(logging.WARNING):
        obs.emitted(outputs, "damage.reports.v1", Counter({"paid": 2, "dead-letter:validate": 1}))
    families = {f.name: f for f in text_string_to_metric_families(obs.metrics.exposition().decode())}

    def values(name):
        return {tuple(sorted(s.labels.items())): s.value for s in families[name].samples if s.name.endswith("_total")}
    assert values("makegood_remedies_issued") == {(("action", "EXTEND"),): 1, (("action", "CREDIT"),): 2}
    assert values("makegood_remedies_issued_won") == {(("action", "CREDIT"),): 3_000}
    assert values("makegood_dead_letters") == {(("stage", "VALIDATE"), ("topic", "damage.reports.v1")): 1}
    assert values("makegood_outputs_published")[(("topic", "remedy.actions.v1"),)] == 3
    assert sum(values("makegood_decisions").values()) == 3
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == ("dead letter: damage.reports.v1 partition 3 offset 1234, stage VALIDATE: InvalidRecord: "
                    "claimed_loss_krw 1000000000000000 is absurd")
    assert "reporter-42" not in line and "secret" not in line
    assert obs.logical("ns1.outage.windows.v1") == "outage.windows.v1" and obs.logical("elsewhere") == "other"


def test_the_progress_line_says_what_flowed_and_nothing_when_idle():
    before = {"consumed": 10, "consumed:entitlement.states.v1": 10, "decided": 10, "emitted": 0, "lag": 0}
    now = {"consumed": 2_010, "consumed:entitlement.states.v1": 2_010, "decided": 2_010, "emitted": 300,
           "emitted:remedy.actions.v1": 300, "dead": 1, "lag": 1_500}
    assert progress_line(before, now, 30) == (
        "progress, last 30 s: consumed 2,000 (entitlement.states.v1 2,000), decided 2,000, emitted 300 "
        "(remedy.actions.v1 300), dead letters 1, lag 1,500")
    assert progress_line(now, dict(now, lag=0), 30) is None
