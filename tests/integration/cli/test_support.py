"""`makegood status` and `makegood deadletters [redrive]` against real workers, broker, Redis and
registry. One scenario: workers on a policy that lacks kakaotv dead-letter its entitlements; the
policy is fixed (workers restarted on the reference policy) and the dead letters redriven, once;
then reports arrive and a support agent looks users up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
import yaml

from processors.batch import evaluate
from processors.model import DamageReport, ReportCategory, ReporterKind, Source
from processors.policy import load_policy
from streams.kafka.topics import create_topics, delete_namespace
from streams.settings import ROOT, Settings
from tests.integration import kit
from tests.integration.conftest import delete_redis_keys, read_topic

POLICY = ROOT / "deploy" / "policies" / "kakao-1015.yaml"
EMAIL = "owner-secret@example.com"
POISON_KEY = b"\xff\x00k"


def _biz(rid: str, reporter: str, loss: int, hours: int) -> DamageReport:
    return DamageReport(report_id=rid, reporter_id=reporter, reporter_kind=ReporterKind.BUSINESS,
                        business_id=f"BRN-{reporter}", service="gift", incident_id=kit.INCIDENT,
                        category=ReportCategory.BUSINESS_LOSS, claimed_loss_krw=loss, occurred_at=None,
                        title="가게 주문 누락", body="secret-body", contact_email=EMAIL, contact_phone="010-1234-5678",
                        submitted_at=kit.START + hours * kit.HOUR)


class Scene:
    def __init__(self, settings: Settings, policy_file: Path):
        self.settings = settings
        self.env = dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace, MAKEGOOD_POLICY=str(policy_file))

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        exe = str(Path(sys.executable).with_name("makegood"))
        return subprocess.run([exe, *args], env=self.env, capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)

    def ends(self, logical: str) -> int:
        from streams.kafka.reader import PartitionReader
        with PartitionReader(self.settings) as r:
            return sum(len(s) for s in r.whole(self.settings.topic(logical)))


@pytest.fixture(scope="module")
def scene(stack, codec, tmp_path_factory):
    settings = Settings.from_env(namespace=f"t{uuid.uuid4().hex[:10]}", state_dir=stack.state_dir)
    create_topics(settings, say=lambda _m: None)
    tmp = tmp_path_factory.mktemp("support")
    narrow = yaml.safe_load(POLICY.read_text())
    narrow["services"] = [s for s in narrow["services"] if s != "kakaotv"]
    narrow["rules"] = [r for r in narrow["rules"] if "kakaotv" not in r.get("services", [])]
    narrow["version"] = "no-kakaotv.1"
    (tmp / "narrow.yaml").write_text(yaml.safe_dump(narrow, allow_unicode=True))
    (tmp / "w1").mkdir()
    workers = kit.Workers(settings, tmp / "w1")
    ents = kit.entitlements(200, seed=5)
    tv = [e for e in ents if e.service == "kakaotv"]
    assert len(tv) >= 3
    try:
        # 1. entitlements under a policy that does not know kakaotv: those become dead letters
        workers.start(1, env={"MAKEGOOD_POLICY": str(tmp / "narrow.yaml")})
        pub = kit.Published()
        kit.publish(settings, codec, "entitlement.states.v1", ents, pub)
        kit.publish(settings, codec, "damage.reports.v1", [],
                    raw=[(POISON_KEY, json.dumps({"report_id": "p1", "contact_email": EMAIL}).encode())])
        read_topic(settings, "remedy.deadletter.v1", expect=len(tv) + 1, timeout=90)
        workers.stop()
        yield Scene(settings, POLICY), codec, pub, tv, workers, tmp
    finally:
        workers.stop()
        delete_namespace(settings)
        delete_redis_keys(settings)


def test_deadletters_list_keys_reasons_and_previews(scene):
    sc, codec, pub, tv, _, _ = scene
    run = sc.cli("deadletters", "--limit", "0")
    assert run.returncode == 0, run.stderr
    assert f"{len(tv) + 1} dead letter(s)" in run.stderr
    out = run.stdout
    assert EMAIL not in out and "secret" not in out
    lines = out.splitlines()
    blocks = {lines[i + 2][len("  key    "):]: lines[i:i + 4] for i in range(0, len(lines), 4)}
    assert len(blocks) == len(tv) + 1
    for e in tv:       # keys as text; the value decoded; the reason
        head, why, _, value = blocks[e.entitlement_id]
        assert head.startswith("entitlement.states.v1:") and "VALIDATE" in head
        assert "kakaotv" in why and value.startswith(f'  value  avro {{"entitlement_id": "{e.entitlement_id}"')
    assert "unknown service" in out.lower() or "kakaotv" in out
    assert "key    base64:/wBr" in out and '"contact_email": "<redacted>"' in out
    only = sc.cli("deadletters", "--topic", "damage.reports.v1", "--json")
    rows = [json.loads(line) for line in only.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["stage"] == "DECODE" and rows[0]["key"] == "base64:/wBr"
    assert rows[0]["selector"].startswith("damage.reports.v1:")
    assert sc.cli("deadletters", "--since", "1h", "--limit", "2").stdout.count("\n  key ") == 2
    assert "0 dead letter(s)" in sc.cli("deadletters", "--since", "2999-01-01T00:00:00+00:00").stderr


def test_redrive_after_the_fix_issues_once(scene):
    sc, codec, pub, tv, workers, tmp = scene
    listed = [json.loads(line) for line in sc.cli("deadletters", "--limit", "0", "--json").stdout.splitlines()]
    tv_selectors = [r["selector"] for r in listed if r["selector"].startswith("entitlement.states.v1:")]
    poison = next(r["selector"] for r in listed if r["selector"].startswith("damage.reports.v1:"))
    before = sc.ends("entitlement.states.v1")

    dry = sc.cli("deadletters", "redrive", "--all", "--dry-run")
    assert dry.returncode == 2, dry.stdout + dry.stderr           # the poison is still refused
    assert f"{poison}: still refused (DECODE" in dry.stderr
    assert all(f"{s}: would redrive" in dry.stdout for s in tv_selectors)
    assert sc.ends("entitlement.states.v1") == before

    # the fix is the reference policy (sc.env); the workers come back on it
    workers.start(1, env={"MAKEGOOD_POLICY": str(POLICY)})
    noconfirm = sc.cli("deadletters", "redrive", *tv_selectors)
    assert noconfirm.returncode == 1 and "--yes" in noconfirm.stderr
    done = sc.cli("deadletters", "redrive", *tv_selectors, "--yes")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": redriven to ") == len(tv)
    moved = {}      # (partition, offset) of the dead-lettered record -> where its copy landed
    for line in done.stdout.splitlines():
        sel, _, rest = line.partition(": redriven to ")
        _, p, o = sel.rsplit(":", 2)
        moved[(int(p), int(o))] = (int(rest.split()[2]), int(rest.split()[4]))
    pub.entitlements[:] = [(e, Source(src.topic, *moved.get((src.partition, src.offset),
                                                            (src.partition, src.offset))))
                           for e, src in pub.entitlements]
    assert sc.ends("entitlement.states.v1") == before + len(tv)
    again = sc.cli("deadletters", "redrive", "--all", "--topic", "entitlement.states.v1", "--yes")
    assert again.returncode == 0 and again.stderr.count("already redriven") == len(tv), again.stderr
    assert sc.ends("entitlement.states.v1") == before + len(tv)     # nothing published twice
    assert "[redriven: published" in sc.cli("deadletters", "--topic", "entitlement.states.v1").stdout

    # the redriven records are decided as if they had just arrived: the incident pays them too
    policy = load_policy(str(POLICY))
    kit.publish(sc.settings, codec, "outage.windows.v1", kit.windows(), pub)
    reports = [r for r in kit.reports(30, seed=3) if r.service != "kakaotv"]
    reports += [_biz("amend-1", "biz-amend", 120_000, 140), _biz("amend-2", "biz-amend", 420_000, 200),
                _biz("big-1", "biz-big", 9_000_000, 150)]
    kit.publish(sc.settings, codec, "damage.reports.v1", reports, pub)
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
    got = [codec.decode_obj("remedy_action", m.value())
           for m in kit.settle(sc.settings, codec, len(expected.remedies), workers=workers)]
    assert kit.as_rows(got) == kit.as_rows(expected.remedies), workers.logs()
    assert {r.subject_id for r in got} >= {e.entitlement_id for e in tv if any(
        x.subject_id == e.entitlement_id for x in expected.remedies)}
    kit.wait_outcomes(sc.settings, "damage.reports.v1", len(reports) + 1)
    read_topic(sc.settings, "remedy.notices.v1", expect=len(expected.notices), timeout=60)
    workers.stop()


def test_status_shows_remedies_notices_open_cases_and_totals(scene):
    sc, codec, pub, tv, _, _ = scene
    run = sc.cli("status", "biz-amend")
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "Remedies (2)" in out and "30,000 won" in out and "20,000 won" in out
    assert "money  50,000 won net" in out
    assert "REPORT_COVERED" in out and "Notices (" in out and "Notices (0)" not in out
    assert "Review cases (0, 0 open)" in out

    big = sc.cli("status", "biz-big")
    assert big.returncode == 0, big.stderr
    assert "no remedies recorded for biz-big" in big.stdout
    assert "Review cases (1, 1 open)" in big.stdout and "LARGE_BUSINESS_LOSS" in big.stdout
    assert "open" in big.stdout and "9,000,000" in big.stdout
    assert "review 1 open case(s) claiming 9,000,000 won" in big.stdout
    for leak in (EMAIL, "010-1234-5678", "secret-body", "가게 주문 누락"):
        assert leak not in big.stdout + run.stdout

    doc = json.loads(sc.cli("status", "biz-amend", "--json").stdout)
    assert doc["totals"]["won_net"] == 50_000 and len(doc["remedies"]) == 2 and doc["notices"]
    assert EMAIL not in json.dumps(doc)


def test_status_counts_days_for_a_consumer(scene):
    sc, codec, pub, tv, _, _ = scene
    r = redis_lib.Redis.from_url(sc.settings.redis_url)
    users = [k.decode().rsplit(":", 1)[1] for k in r.scan_iter(f"{sc.settings.redis_prefix}user:u*")]
    hours = {}
    for u in users:
        rows = [codec.decode_obj("remedy_action", v) for v in r.hgetall(f"{sc.settings.redis_prefix}user:{u}").values()]
        hours[u] = sum(x.extend_hours or 0 for x in rows)
    user = max(hours, key=hours.get)
    assert hours[user] > 0
    out = sc.cli("status", user).stdout
    d = hours[user] / 24
    assert f"time   {d:,.0f} days" in out or f"time   {d:,.1f} days" in out, out


def test_unknown_user_exits_non_zero_with_one_line(scene):
    sc = scene[0]
    run = sc.cli("status", "nobody-here")
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no remedies, notices or review cases for user 'nobody-here'" in lines[0]
