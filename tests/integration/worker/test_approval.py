"""Guarded issuance on the real broker and Redis, with two workers: an incident revision over the
policy's approval limits issues nothing until an operator approves it with the real CLI; then
everything is issued exactly once and matches the batch evaluator (which applies the same gate);
approving twice, a duplicate approval record and a restarted worker pay nobody twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from processors.batch import evaluate
from processors.model import IncidentApproval, ReportCategory, Source
from processors.policy import load_policy
from streams.settings import ROOT
from tests.integration import kit
from tests.integration.conftest import read_topic

MAKEGOOD = str(Path(sys.executable).parent / "makegood")
APPROVALS = "makegood.approvals.v1"


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    """The reference policy with limits the test's 400 entitlements exceed."""
    doc = yaml.safe_load((ROOT / "deploy" / "policies" / "kakao-1015.yaml").read_text())
    doc["approval"] = {"above_remedies": 50, "above_won": 10_000_000}
    path = tmp_path / "guarded.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def cli(settings, policy_file, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace, MAKEGOOD_POLICY=str(policy_file),
               MAKEGOOD_BOOTSTRAP=settings.bootstrap, MAKEGOOD_REDIS_URL=settings.redis_url)
    return subprocess.run([MAKEGOOD, *args], capture_output=True, text=True, env=env, timeout=120)


def pending(settings, policy_file, until: str, timeout: float = 120) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        res = cli(settings, policy_file, "incident", "pending", "--json")
        assert res.returncode == 0, res.stderr
        held = json.loads(res.stdout)
        if until in {h["state"] for h in held} or time.monotonic() > deadline:
            return held
        time.sleep(1)


def approvals_on_topic(settings, codec) -> list:
    return [(codec.decode_obj("incident_approval", m.value()), Source(m.topic(), m.partition(), m.offset()))
            for m in read_topic(settings, APPROVALS, idle=1.0)]


def test_over_limit_revision_waits_for_approval_then_issues_once(settings, codec, workers, policy_file):
    policy = load_policy(str(policy_file))
    workers.start(2, env={"MAKEGOOD_POLICY": str(policy_file)})
    workers.wait_ready()
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(400, seed=21), pub)
    kit.wait_outcomes(settings, "entitlement.states.v1", 400)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    # business reports about the incident arrive while it is held: they wait with it
    business = [r for r in kit.reports(80, seed=4) if r.category is ReportCategory.BUSINESS_LOSS]
    kit.publish(settings, codec, "damage.reports.v1", business, pub)

    held = pending(settings, policy_file, until="held")
    oracle = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
    assert oracle.remedies == () and oracle.notices == () and oracle.reviews == ()
    by_rev = {h["revision"]: h for h in held}
    assert by_rev[2]["state"] == "held" and by_rev[3]["state"] == "behind"
    want = {h.revision: h.cost for h in oracle.holds}
    for rev in (2, 3):     # the cluster's count (two workers, eight partitions) is the evaluator's
        assert by_rev[rev]["cost"] == want[rev].to_plain(), (rev, by_rev[rev], want[rev])
    assert by_rev[3]["cost"]["remedies"] > 50
    text = cli(settings, policy_file, "incident", "pending")
    assert "revision 2: HELD" in text.stdout and "release it: makegood incident approve" in text.stdout
    report = cli(settings, policy_file, "report", kit.INCIDENT)
    assert "revision 2: HELD, nothing issued; would issue" in report.stdout, report.stdout + report.stderr
    kit.wait_outcomes(settings, "damage.reports.v1", len(business))
    time.sleep(3)
    for topic in ("remedy.actions.v1", "remedy.notices.v1", "remedy.reviews.v1"):
        assert read_topic(settings, topic, idle=1.0) == [], topic

    # refused: unknown incident, unknown revision, a revision that is not held
    for args, says in ((["INC-NOPE", "--revision", "2"], "unknown incident INC-NOPE"),
                       ([kit.INCIDENT, "--revision", "9"], "has no revision 9"),
                       ([kit.INCIDENT, "--revision", "1"], "is not held")):
        res = cli(settings, policy_file, "incident", "approve", *args, "--by", "sre-1")
        assert res.returncode == 1 and says in res.stderr and res.stderr.count("\n") == 1, res.stderr

    ok = cli(settings, policy_file, "incident", "approve", kit.INCIDENT, "--revision", "3", "--by", "sre-1")
    assert ok.returncode == 0, ok.stderr
    assert "revisions 2-3" in ok.stdout
    approvals = approvals_on_topic(settings, codec)
    assert [a.revision for a, _ in approvals] == [3]
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports, approvals=approvals)
    assert expected.holds == () and len(expected.remedies) == by_rev[3]["cost"]["remedies"] + len(
        [r for r in expected.remedies if r.action.value == "PAYOUT"])
    got = kit.settle(settings, codec, len(expected.remedies), workers=workers)
    assert kit.as_rows(codec.decode_obj("remedy_action", m.value()) for m in got) == kit.as_rows(expected.remedies)

    report = cli(settings, policy_file, "report", kit.INCIDENT, "--json")
    section = json.loads(report.stdout)["approval"]
    assert section["held"] == [] and [a["approved_by"] for a in section["approved"]] == ["sre-1"]
    # approving twice is refused; a duplicate record on the topic, and a restarted worker, pay nobody twice
    again = cli(settings, policy_file, "incident", "approve", kit.INCIDENT, "--revision", "3", "--by", "sre-2")
    assert again.returncode == 1 and "already approved" in again.stderr
    dup = IncidentApproval(kit.INCIDENT, 3, "sre-2", approvals[0][0].approved_at + 1, policy.version, 1, 1)
    kit.publish(settings, codec, APPROVALS, [], None,
                raw=[(kit.INCIDENT.encode(), codec.encode_obj("incident_approval", dup))])
    workers.kill(0)
    workers.start(1, env={"MAKEGOOD_POLICY": str(policy_file)})
    time.sleep(10)
    final = read_topic(settings, "remedy.actions.v1", idle=2.0)
    counts = Counter(codec.decode_obj("remedy_action", m.value()).remedy_id for m in final)
    assert len(counts) == len(expected.remedies) and max(counts.values()) == 1
    notices = read_topic(settings, "remedy.notices.v1", idle=1.0)
    assert len(notices) == len(expected.notices)
