"""Replay, ledger rebuild and status through the real `makegood` CLI, after a live pipeline run.

One scenario per module (it takes a live worker ~a minute): the tests run against its output in
file order and each leaves the ledger as complete as it found it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis as redis_lib
import yaml
from confluent_kafka import Consumer, TopicPartition

from processors.batch import evaluate
from processors.model import (DamageReport, EntitlementStatus, RemedyAction, ReportCategory, ReporterKind,
                              from_dict)
from processors.policy import load_policy
from streams.wire.jsonio import JsonRecords
from streams.ledger.store import Keys
from streams.settings import ROOT, Settings
from streams.kafka.topics import create_topics, delete_namespace
from tests.integration import kit
from tests.integration.conftest import read_topic

EXE = str(Path(sys.executable).with_name("makegood"))
POLICY = ROOT / "deploy" / "policies" / "kakao-1015.yaml"
OUTPUTS = ("remedy.actions.v1", "remedy.reviews.v1", "remedy.notices.v1", "remedy.deadletter.v1")


def _biz_report(rid: str, loss: int, hours_after_start: int) -> DamageReport:
    return DamageReport(report_id=rid, reporter_id="biz-amend", reporter_kind=ReporterKind.BUSINESS,
                        business_id="BRN-amend", service="gift", incident_id=kit.INCIDENT,
                        category=ReportCategory.BUSINESS_LOSS, claimed_loss_krw=loss, occurred_at=None,
                        title="t", body="b", contact_email=None, contact_phone=None,
                        submitted_at=kit.START + hours_after_start * kit.HOUR)


class Scenario:
    def __init__(self, settings: Settings, codec, expected: list[RemedyAction], mid_ms: int,
                 topup: RemedyAction):
        self.settings = settings
        self.codec = codec
        self.expected = expected
        self.mid_ms = mid_ms           # broker time between the two report batches
        self.topup = topup             # a PAYOUT top-up decided from the second batch
        self.redis = redis_lib.Redis.from_url(settings.redis_url)
        self.keys = Keys(settings.redis_prefix)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        env = dict(os.environ, MAKEGOOD_NAMESPACE=self.settings.namespace)
        return subprocess.run([EXE, *args], env=env, capture_output=True, text=True, timeout=300,
                              input=stdin if stdin is not None else "", cwd=str(ROOT))

    def cli_on_terminal(self, *args: str, answer: str) -> subprocess.CompletedProcess:
        """Run with a pseudo-terminal as standard input, answering the confirmation prompt."""
        import pty
        master, slave = pty.openpty()
        try:
            os.write(master, answer.encode() + b"\n")
            env = dict(os.environ, MAKEGOOD_NAMESPACE=self.settings.namespace)
            return subprocess.run([EXE, *args], env=env, stdin=slave, capture_output=True, text=True,
                                  timeout=300, cwd=str(ROOT))
        finally:
            os.close(master)
            os.close(slave)

    def counts(self) -> dict[str, int]:
        c = Consumer({"bootstrap.servers": self.settings.bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
        try:
            out = {}
            for logical in OUTPUTS:
                name = self.settings.topic(logical)
                parts = c.list_topics(name, timeout=10).topics[name].partitions
                out[logical] = sum(c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in parts)
            return out
        finally:
            c.close()

    def group_state(self) -> tuple[dict, list[str]]:
        """The live workers' committed offsets, and any consumer group a replay left behind."""
        from confluent_kafka import ConsumerGroupTopicPartitions
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap})
        committed = {}
        for name in ("makegood.entitlements", "makegood.reports"):      # the workers' two groups
            group = self.settings.topic(name)
            (fut,) = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)]).values()
            committed.update({(tp.topic, tp.partition): tp.offset for tp in fut.result().topic_partitions})
        groups = [g.group_id for g in admin.list_consumer_groups().result().valid]
        return committed, [g for g in groups if g.startswith("makegood-replay-")]

    def full_offsets(self, logical: str) -> list[str]:
        c = Consumer({"bootstrap.servers": self.settings.bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
        try:
            name = self.settings.topic(logical)
            spans = []
            for p in sorted(c.list_topics(name, timeout=10).topics[name].partitions):
                low, high = c.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > low:
                    spans.append(f"{p}:{low}-{high - 1}")
            return spans
        finally:
            c.close()

    def forget(self, remedies: list[RemedyAction]) -> None:
        """Simulate lost work: the ids leave the ledger and the users' indexes."""
        self.redis.srem(self.keys.ledger, *[r.remedy_id for r in remedies])
        for r in remedies:
            self.redis.hdel(self.keys.user(r.user_id), r.remedy_id)


@pytest.fixture(scope="module")
def scenario(stack, codec, tmp_path_factory):
    settings = Settings.from_env(namespace=f"t{uuid.uuid4().hex[:10]}", state_dir=stack.state_dir)
    create_topics(settings, say=lambda _m: None)
    workers = kit.Workers(settings, tmp_path_factory.mktemp("workers"))
    policy = load_policy(str(POLICY))
    try:
        workers.start(1)
        pub = kit.Published()
        kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(400, seed=21), pub)
        kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
        kit.settle(settings, codec, len(evaluate(policy, pub.windows, pub.entitlements, []).remedies),
                   workers=workers)
        reports = kit.reports(60, seed=13)
        kit.publish(settings, codec, "damage.reports.v1", reports[:30] + [_biz_report("amend-1", 120_000, 140)], pub)
        time.sleep(1.0)
        mid_ms = int(time.time() * 1000)
        time.sleep(1.0)
        kit.publish(settings, codec, "damage.reports.v1", reports[30:] + [_biz_report("amend-2", 420_000, 200)], pub)
        expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
        msgs = kit.settle(settings, codec, len(expected.remedies), workers=workers)
        kit.wait_outcomes(settings, "damage.reports.v1", len(pub.reports))
        got = [codec.decode_obj("remedy_action", m.value()) for m in msgs]
        assert kit.as_rows(got) == kit.as_rows(expected.remedies), workers.logs()
        topup = next(r for r in got if r.user_id == "biz-amend" and r.supersedes)
        assert topup.amount_krw == 20_000
        workers.stop()
        yield Scenario(settings, codec, got, mid_ms, topup)
    finally:
        workers.stop()
        delete_namespace(settings)
        r = redis_lib.Redis.from_url(settings.redis_url)
        keys = list(r.scan_iter(f"{settings.redis_prefix}*", count=1000))
        if keys:
            r.delete(*keys)


def _rows(remedies) -> set[str]:
    return kit.as_rows(remedies)


def _remedies_from_lines(codec, stdout: str) -> list[RemedyAction]:
    records = JsonRecords(codec)
    return [from_dict(RemedyAction, records.to_avro("remedy_action", json.loads(line)))
            for line in stdout.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- tests

def test_replays_after_the_live_run_issue_nothing(scenario):
    before = scenario.counts()
    committed, _ = scenario.group_state()
    assert committed, "the live workers committed offsets"
    runs = [
        ("replay", "entitlement.states.v1", "--offsets", *scenario.full_offsets("entitlement.states.v1"), "--yes"),
        ("replay", "outage.windows.v1", "--from", "0", "--yes"),
        ("replay", "damage.reports.v1", "--from", "1970-01-01T00:00:00Z", "--yes"),
    ]
    for args in runs:
        res = scenario.cli(*args)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("published 0 records"), res.stdout + res.stderr
        assert " 0 undecodable or invalid" in res.stderr
    assert scenario.counts() == before
    assert scenario.group_state() == (committed, [])    # the live group's offsets never moved


def test_dry_run_lists_lost_work_and_the_replay_restores_exactly_it(scenario):
    ent_remedies = [r for r in scenario.expected if r.subject_kind.value == "ENTITLEMENT"]
    lost = sorted(ent_remedies, key=lambda r: r.remedy_id)[:3]
    scenario.forget(lost)
    before = scenario.counts()

    dry = scenario.cli("replay", "entitlement.states.v1", "--from", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _rows(_remedies_from_lines(scenario.codec, dry.stdout)) == _rows(lost)
    assert "Would publish 3 records: 3 remedies, 0 reviews, 0 notices" in dry.stderr
    assert "already issued (in the ledger)" in dry.stderr
    assert scenario.counts() == before

    refused = scenario.cli("replay", "entitlement.states.v1", "--from", "0")   # no TTY, no --yes
    assert refused.returncode != 0 and "pass --yes" in refused.stderr
    declined = scenario.cli_on_terminal("replay", "entitlement.states.v1", "--from", "0", "--quiet", answer="n")
    assert declined.returncode != 0 and "[y/N]" in declined.stderr and "nothing published" in declined.stderr
    assert scenario.counts() == before

    live = scenario.cli("replay", "entitlement.states.v1", "--from", "0", "--yes")
    assert live.returncode == 0, live.stderr
    assert live.stdout.startswith("published 3 records (3 remedies"), live.stdout
    after = scenario.counts()
    assert after["remedy.actions.v1"] == before["remedy.actions.v1"] + 3
    assert {k: v for k, v in after.items() if k != "remedy.actions.v1"} == \
        {k: v for k, v in before.items() if k != "remedy.actions.v1"}
    on_topic = [scenario.codec.decode_obj("remedy_action", m.value())
                for m in read_topic(scenario.settings, "remedy.actions.v1", idle=1)]
    republished = [r for r in on_topic if r.remedy_id in {x.remedy_id for x in lost}]
    assert len(republished) == 6 and _rows(republished) == _rows(lost)   # byte-identical copies
    assert all(scenario.redis.sismember(scenario.keys.ledger, r.remedy_id) for r in lost)
    assert all(scenario.redis.hexists(scenario.keys.user(r.user_id), r.remedy_id) for r in lost)

    # a report range from the middle: the top-up needs the case folded from the earlier batch
    scenario.forget([scenario.topup])
    dry = scenario.cli("replay", "damage.reports.v1", "--from", str(scenario.mid_ms), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _rows(_remedies_from_lines(scenario.codec, dry.stdout)) == _rows([scenario.topup])
    live = scenario.cli("replay", "damage.reports.v1", "--from", str(scenario.mid_ms), "--yes")
    assert live.returncode == 0 and live.stdout.startswith("published 1 records (1 remedies"), live.stdout
    assert scenario.redis.sismember(scenario.keys.ledger, scenario.topup.remedy_id)


def test_what_if_policy_prints_both_costs_and_publishes_nothing(scenario, tmp_path):
    doc = yaml.safe_load(POLICY.read_text())
    doc["version"] = "kakao-1015.what-if"
    for rule in doc["rules"]:
        if rule["id"] == "emoticon-plus-web":
            rule["remedy"] = {"extend": "120h"}
    for tier in doc["reports"]["business"]["tiers"]:
        tier["payout"] *= 2
    variant = tmp_path / "what-if.yaml"
    variant.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = scenario.counts()

    res = scenario.cli("replay", "outage.windows.v1", "--from", "0", "--dry-run", "--policy", str(variant))
    assert res.returncode == 0, res.stderr
    rows = {line.split()[0]: line.split()[1:] for line in res.stdout.splitlines() if line.strip()}
    assert "current kakao-1015.1" in res.stdout and "what-if kakao-1015.what-if" in res.stdout
    n_web = sum(1 for r in scenario.expected if r.rule_id == "emoticon-plus-web")
    assert n_web > 0
    # columns: count won hours (current) | count won hours (what-if) | difference
    web = [int(x.replace(",", "")) for x in rows["emoticon-plus-web"]]
    assert web[0] == web[3] == n_web and web[2] == 72 * n_web and web[5] == 120 * n_web
    assert web[8] == 48 * n_web
    # the whole incident in one run: the windows' what-if prices the damage reports too (#16)
    paid = sum(r.amount_krw for r in scenario.expected if r.action.value == "PAYOUT")
    assert paid > 0
    whole = [int(x.replace(",", "")) for x in rows["PAYOUT"]]
    assert whole[1] == paid and whole[4] == 2 * paid and whole[7] == paid
    assert [int(x.replace(",", "")) for x in rows["total"]][0] == len(scenario.expected)
    assert "damage reports" in res.stdout.splitlines()[0] and "review case(s) left to a reviewer" in res.stdout
    worth = re.search(r"extensions in won \(price per hour x hours extended\): ([\d,]+) current, ([\d,]+) what-if",
                      res.stdout)
    assert worth and 0 < int(worth.group(1).replace(",", "")) < int(worth.group(2).replace(",", ""))

    res = scenario.cli("replay", "damage.reports.v1", "--from", "0", "--dry-run", "--policy", str(variant))
    assert res.returncode == 0, res.stderr
    payout = [int(x.replace(",", "")) for x in
              next(line for line in res.stdout.splitlines() if line.startswith("PAYOUT")).split()[1:]]
    assert payout[1] == paid and payout[4] == 2 * paid and payout[7] == paid
    assert scenario.counts() == before


def test_ledger_rebuild_restores_the_ledger_and_status(scenario):
    user = scenario.topup.user_id
    size = scenario.redis.scard(scenario.keys.ledger)
    status = scenario.cli("status", user)
    assert status.returncode == 0 and scenario.topup.remedy_id in status.stdout
    assert "PAYOUT" in status.stdout and "20,000 won" in status.stdout
    as_json = scenario.cli("status", user, "--json")
    assert {r["remedy_id"] for r in json.loads(as_json.stdout)["remedies"]} >= {scenario.topup.remedy_id}
    index = {k: scenario.redis.hgetall(k) for k in scenario.redis.scan_iter(f"{scenario.keys.user_prefix}*")}

    keys = list(scenario.redis.scan_iter(f"{scenario.settings.redis_prefix}*"))
    scenario.redis.delete(*keys)
    gone = scenario.cli("status", user)
    assert f"no remedies recorded for {user}" in gone.stdout    # its notices are still on their topic

    dry = scenario.cli("ledger", "rebuild", "--dry-run")
    assert dry.returncode == 0 and f"would add {size:,}" in dry.stdout, dry.stdout + dry.stderr
    assert scenario.redis.scard(scenario.keys.ledger) == 0
    res = scenario.cli("ledger", "rebuild")
    assert res.returncode == 0, res.stderr
    assert scenario.redis.scard(scenario.keys.ledger) == size
    assert {k: scenario.redis.hgetall(k) for k in scenario.redis.scan_iter(f"{scenario.keys.user_prefix}*")} == index
    assert scenario.cli("status", user).stdout == status.stdout
    again = scenario.cli("ledger", "rebuild")
    assert "added 0" in again.stdout and scenario.redis.scard(scenario.keys.ledger) == size

    before = scenario.counts()
    for topic in ("outage.windows.v1", "entitlement.states.v1", "damage.reports.v1"):
        res = scenario.cli("replay", topic, "--from", "0", "--yes")
        assert res.returncode == 0 and res.stdout.startswith("published 0 records"), res.stdout + res.stderr
    assert scenario.counts() == before


def test_a_stale_state_is_not_decided_even_when_it_would_earn_a_remedy(scenario):
    remedied = {r.subject_id for r in scenario.expected}
    ent = next(e for e in kit.entitlements(400, seed=21)
               if e.entitlement_id not in remedied and e.service in ("kakaopage", "kakaotv", "melon"))
    stale = dataclasses.replace(ent, status=EntitlementStatus.ACTIVE, valid_from=kit.START - kit.DAY,
                                valid_until=kit.START + 30 * kit.DAY, updated_at=ent.updated_at - kit.HOUR)
    pub = kit.Published()
    kit.publish(scenario.settings, scenario.codec, "entitlement.states.v1", [stale], pub)
    (_, source), = pub.entitlements
    span = f"{source.partition}:{source.offset}-{source.offset}"
    res = scenario.cli("replay", "entitlement.states.v1", "--offsets", span, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and "1 stale states" in res.stderr and "Would publish 0 records" in res.stderr


def test_a_state_superseded_by_a_later_one_is_not_decided(scenario):
    """A replay decides an entitlement's latest state, as the worker's sweep does: a state that
    would earn a remedy but is followed by one that earns nothing (refunded) is not decided,
    so replaying a range already processed issues nothing (found by the fault suite)."""
    ent = next(e for e in kit.entitlements(400, seed=21) if e.service in ("kakaopage", "kakaotv", "melon"))
    eligible = dataclasses.replace(ent, entitlement_id="e-superseded-1", status=EntitlementStatus.ACTIVE,
                                   valid_from=kit.START - kit.DAY, valid_until=kit.START + 30 * kit.DAY,
                                   updated_at=kit.START + 200 * kit.HOUR)
    refunded = dataclasses.replace(eligible, status=EntitlementStatus.REFUNDED, updated_at=eligible.updated_at + 1)
    pub = kit.Published()
    kit.publish(scenario.settings, scenario.codec, "entitlement.states.v1", [eligible, refunded], pub)
    (_, first), _ = pub.entitlements
    span = f"{first.partition}:{first.offset}-{first.offset}"
    res = scenario.cli("replay", "entitlement.states.v1", "--offsets", span, "--dry-run")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and "1 superseded states" in res.stderr and "Would publish 0 records" in res.stderr


@pytest.mark.parametrize("args, says", [
    (("replay", "remedy.actions.v1", "--from", "0"), "cannot replay"),
    (("replay", "damage.reports.v1", "--from", "0", "--policy", str(POLICY)), "--dry-run"),
    (("replay", "damage.reports.v1", "--offsets", "0:5"), "PARTITION:FIRST-LAST"),
    (("replay", "damage.reports.v1", "--offsets", "0:9-3"), "ends before it starts"),
    (("replay", "damage.reports.v1", "--offsets", "99:0-3"), "no partition 99"),
    (("replay", "damage.reports.v1"), "exactly one of --from"),
    (("replay", "damage.reports.v1", "--from", "yesterday"), "ISO-8601"),
    (("replay", "damage.reports.v1", "--from", "2022-10-15T00:00:00"), "no UTC offset"),
    (("replay", "entitlement.states.v1", "--from", "0", "--max-records", "5"), "--max-records"),
    (("replay", "damage.reports.v1", "--from", "0", "--dry-run", "--policy", "/nonexistent.yaml"), "nonexistent"),
])
def test_bad_arguments_fail_with_one_clear_line(scenario, args, says):
    res = scenario.cli(*args)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], res.stderr
