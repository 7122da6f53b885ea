"""`makegood report` on a live pipeline agrees with the batch evaluator, and leaks nothing."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path


from processors.batch import evaluate
from processors.model import Action
from processors.policy import load_policy
from streams.settings import ROOT
from streams.kafka.topics import admin_client
from tests.integration import kit
from tests.integration.conftest import read_topic


def _makegood(settings, *args: str) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("makegood"))
    env = dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace)
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)


def _value(text: str, label: str) -> int:
    m = re.search(rf"^  {re.escape(label)}\s+(-?[\d,]+)\s*$", text, re.M)
    assert m, f"no {label!r} line in:\n{text}"
    return int(m.group(1).replace(",", ""))


def test_report_totals_equal_the_batch_evaluator(settings, codec, workers, tmp_path):
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    workers.start(1)
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(300), pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    kit.settle(settings, codec, len(evaluate(policy, pub.windows, pub.entitlements, pub.reports).remedies),
               workers=workers)
    kit.publish(settings, codec, "damage.reports.v1", kit.reports(60), pub,
                raw=[(b"poison", b"not avro at all")])
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
    kit.settle(settings, codec, len(expected.remedies), workers=workers)
    read_topic(settings, "remedy.reviews.v1", expect=len(expected.reviews), timeout=60)
    read_topic(settings, "remedy.notices.v1", expect=len(expected.notices), timeout=60)
    read_topic(settings, "remedy.deadletter.v1", expect=1, timeout=60)
    groups_before = _groups(settings)

    html = tmp_path / "r.html"
    run = _makegood(settings, "report", kit.INCIDENT, "--html", str(html))
    assert run.returncode == 0, run.stderr
    text = run.stdout

    def total(action: Action, attr: str) -> int:
        return sum(getattr(r, attr) or 0 for r in expected.remedies if r.action is action)

    table_total = re.search(r"^  total\s+([\d,]+)", text, re.M)
    assert table_total and int(table_total.group(1).replace(",", "")) == len(expected.remedies), text
    assert _value(text, "won credited") == total(Action.CREDIT, "amount_krw") > 0
    assert _value(text, "won paid out") == total(Action.PAYOUT, "amount_krw") > 0
    assert _value(text, "hours extended") == total(Action.EXTEND, "extend_hours") > 0
    assert _value(text, "hours granted") == total(Action.GRANT, "extend_hours")
    assert f"HTML report written to {html}" in text

    doc = json.loads(_makegood(settings, "report", kit.INCIDENT, "--json").stdout)
    assert doc["totals"]["remedies"] == len(expected.remedies)
    assert doc["totals"]["users_reached"] == len({r.user_id for r in expected.remedies})
    assert doc["incident"]["revisions"] == 3 and doc["incident"]["status"] == "CLOSED"
    reasons: dict[str, int] = {}
    for case in expected.reviews:
        if case.incident_id == kit.INCIDENT:
            reasons[case.reason.value] = reasons.get(case.reason.value, 0) + 1
    assert doc["reviews_by_reason"] == reasons
    assert [g["source_topic"] for g in doc["dead_letters"]] == ["damage.reports.v1"]
    assert doc["timing"]["close_to_last_remedy_s"] > 0
    assert sum(doc["outcomes"]["entitlement.states.v1"].values()) >= 300

    page = html.read_text()
    HTMLParser().feed(page)
    assert "<svg" in page and "<script" not in page
    for out in (text, page, json.dumps(doc)):
        assert "secret-body" not in out and "@example.com" not in out and "not avro at all" not in out
    assert _groups(settings) == groups_before, "the report must not create or move consumer groups"

    # for a billing lead (#16): per case, open exposure, extensions in won, the incident's zone
    mine = [r for r in expected.remedies if r.incident_id == kit.INCIDENT]
    payouts: dict[str, int] = {}
    for r in mine:
        if r.action is Action.PAYOUT:
            payouts[r.subject_id] = payouts.get(r.subject_id, 0) + r.amount_krw
    per_case = {c["action"]: c for c in doc["per_case"]}
    assert per_case["PAYOUT"]["cases"] == len(payouts) and per_case["PAYOUT"]["won"] == sum(payouts.values())
    assert per_case["PAYOUT"]["average"] == round(sum(payouts.values()) / len(payouts))
    open_cases = {v.review_id: v for v in expected.reviews if v.incident_id == kit.INCIDENT}
    assert doc["exposure"]["open_cases"] == len(open_cases) > 0
    assert doc["exposure"]["open_claimed_won"] == sum(v.claimed_loss_krw or 0 for v in open_cases.values())
    price = {e.entitlement_id: (e.price_krw, e.period_days) for e, _ in pub.entitlements}
    worth = sum(round(price[r.subject_id][0] * r.extend_hours / (price[r.subject_id][1] * 24))
                for r in mine if r.action is Action.EXTEND and price[r.subject_id][0] > 0)
    assert worth > 0 and sum(e["won"] for e in doc["extensions"]) == worth
    assert _value(text, "won value of extensions") == worth
    assert doc["timezone"] == "Asia/Seoul" and "2022-10-15 15:19 KST" in text      # START is 15:19 KST
    utc = _makegood(settings, "report", kit.INCIDENT, "--utc")
    assert "2022-10-15 06:19 UTC" in utc.stdout and " KST" not in utc.stdout
    assert "Timing, event time" in text and "Timing, pipeline time" in text


def test_unknown_incident_is_one_line_and_exit_1(settings):
    run = _makegood(settings, "report", "INC-NOPE")
    assert run.returncode == 1
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1
    assert "INC-NOPE" in run.stderr


def _groups(settings) -> set[str]:
    result = admin_client(settings).list_consumer_groups(request_timeout=10).result()
    return {g.group_id for g in result.valid if g.group_id.startswith("makegood-report")}
