"""#17 across the change: records written before it are on the topics, a worker on the new code
runs, and neither it, nor a replay, nor `ledger rebuild` issues anything twice.

Before #17 makegood wrote the single-object fingerprint's 8 bytes reversed. The state before the
change is set up as it was then: inputs, and the outputs the batch oracle says they earned, all
in the old byte order (tests.legacy_wire), and the ledger rebuilt from those outputs. Then a
worker on the new code reads everything from the beginning and new inputs arrive in the new
order (an amended window and more reports, so top-ups supersede pre-#17 remedies). Remedy ids
never depended on bytes, so the ledger recognises every old record; new records carry the
specification's order. One scenario per module, as in test_replay.py, whose helpers it reuses.
"""
from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import pytest
import redis as redis_lib

from processors.batch import Evaluation, evaluate
from processors.model import RemedyAction
from processors.policy import load_policy
from streams.decide.outputs import encode_outputs
from streams.kafka.producer import Producer
from streams.kafka.topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS, create_topics, delete_namespace
from streams.settings import Settings
from streams.wire.codec import REGISTRY_FRAMING, REVERSED_ORDER, SPEC_ORDER, Codec
from tests.integration import kit
from tests.integration.conftest import read_topic
from tests.integration.replay.test_replay import POLICY, Scenario, _biz_report
from tests.legacy_wire import PreFixCodec

ENTITLEMENTS, REPORTS = 300, 40
INPUTS = ("outage.windows.v1", "entitlement.states.v1", "damage.reports.v1")
SCHEMA = {ACTIONS: "remedy_action", REVIEWS: "review_case", NOTICES: "user_notice"}


def _publish_pre17_outputs(settings: Settings, old: Codec, ev: Evaluation) -> int:
    """What a pre-#17 worker published for `ev`: same records, same keys, the old header."""
    outputs = ([(r.remedy_id, ACTIONS, r.user_id, r) for r in ev.remedies]
               + [(c.review_id, REVIEWS, c.case_id, c) for c in ev.reviews]
               + [(n.notice_id, NOTICES, n.user_id, n) for n in ev.notices])
    records, _ = encode_outputs(old, outputs)
    producer = Producer(settings)
    try:
        producer.send_batch_sync([(settings.topic(t), key, value, None) for _, t, key, value in records], 60)
    finally:
        producer.close()
    return len(records)


def _wait_sweep(workers: kit.Workers, timeout: float = 180) -> None:
    log = workers.logdir / "worker-0.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"sweep \d+: ", log.read_text(errors="replace")):
            return
        assert all(workers.alive()), workers.logs()
        time.sleep(0.5)
    raise AssertionError("no sweep finished:\n" + workers.logs())


def _on_topics(scenario: Scenario) -> dict[str, list]:
    """Every output record, as (id, decoded record, raw value), per output topic."""
    out = {}
    for topic, schema in SCHEMA.items():
        rows = []
        for m in read_topic(scenario.settings, topic, idle=1):
            rec = scenario.codec.decode_obj(schema, m.value())
            rows.append((getattr(rec, {ACTIONS: "remedy_id", REVIEWS: "review_id", NOTICES: "notice_id"}[topic]),
                         rec, m.value()))
        out[topic] = rows
    return out


@dataclass
class Migration:
    scenario: Scenario
    before: Evaluation          # what the pre-#17 records are (published in the old order)
    expected: Evaluation        # what everything, old and new inputs, earns
    rebuilt_stdout: str         # `ledger rebuild` over the pre-#17 outputs only
    counts_pre17: dict          # output topics once the pre-#17 world was set up
    counts_after_old_inputs: dict   # ... and once the new worker had read every pre-#17 input


@pytest.fixture(scope="module")
def migration(stack, codec, tmp_path_factory):
    settings = Settings.from_env(namespace=f"t{uuid.uuid4().hex[:10]}", state_dir=stack.state_dir)
    create_topics(settings, say=lambda _m: None)
    workers = kit.Workers(settings, tmp_path_factory.mktemp("workers"))
    policy = load_policy(str(POLICY))
    old = PreFixCodec(codec.registry)
    try:
        # before #17: inputs, their outputs and the ledger, all in the old byte order
        pub = kit.Published()
        windows, reports = kit.windows(), kit.reports(REPORTS, seed=19)
        kit.publish(settings, old, "entitlement.states.v1", kit.entitlements(ENTITLEMENTS, seed=23), pub)
        kit.publish(settings, old, "outage.windows.v1", windows[:2], pub)
        kit.publish(settings, old, "damage.reports.v1",
                    reports[:REPORTS // 2] + [_biz_report("amend-1", 120_000, 140)], pub)
        before = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
        n_old = _publish_pre17_outputs(settings, old, before)
        scenario = Scenario(settings, codec, [], 0, None)
        rebuilt = scenario.cli("ledger", "rebuild")
        assert rebuilt.returncode == 0 and f"added {n_old:,}" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
        counts_pre17 = scenario.counts()

        # the new code reads all of it
        workers.start(1)
        kit.wait_outcomes(settings, "entitlement.states.v1", ENTITLEMENTS)
        kit.wait_outcomes(settings, "damage.reports.v1", len(pub.reports))
        _wait_sweep(workers)
        time.sleep(2.0)
        counts_after_old_inputs = scenario.counts()

        # after #17: new inputs, written by the new code
        kit.publish(settings, codec, "outage.windows.v1", windows[2:], pub)
        kit.publish(settings, codec, "damage.reports.v1",
                    reports[REPORTS // 2:] + [_biz_report("amend-2", 420_000, 200)], pub)
        expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
        kit.settle(settings, codec, len(expected.remedies), workers=workers)
        kit.wait_outcomes(settings, "damage.reports.v1", len(pub.reports))
        for topic, want in ((REVIEWS, expected.reviews), (NOTICES, expected.notices)):
            read_topic(settings, topic, expect=len(want), timeout=60, idle=1)
        workers.stop()
        scenario.expected = list(expected.remedies)
        scenario.topup = next(r for r in expected.remedies if r.user_id == "biz-amend" and r.supersedes)
        yield Migration(scenario, before, expected, rebuilt.stdout, counts_pre17, counts_after_old_inputs)
    finally:
        workers.stop()
        delete_namespace(settings)
        r = redis_lib.Redis.from_url(settings.redis_url)
        keys = list(r.scan_iter(f"{settings.redis_prefix}*", count=1000))
        if keys:
            r.delete(*keys)


# ----------------------------------------------------------------------------- tests

def test_a_new_worker_reads_pre17_inputs_and_issues_nothing_already_issued(migration):
    assert migration.counts_after_old_inputs == migration.counts_pre17
    assert migration.counts_pre17[DEADLETTER] == 0


def _by_id(ev: Evaluation) -> dict[str, dict]:
    return {ACTIONS: {r.remedy_id: r for r in ev.remedies}, REVIEWS: {c.review_id: c for c in ev.reviews},
            NOTICES: {n.notice_id: n for n in ev.notices}}


def _now(sc) -> str:
    """How makegood writes today: registry framing with a registry (the local stack), else the
    spec's fingerprint order."""
    return REGISTRY_FRAMING if sc.codec.framing is not None else SPEC_ORDER


def test_every_output_is_on_its_topic_once_as_the_oracle_says_in_the_order_of_its_time(migration):
    """Records issued before #17 stay as they were (a notice is not re-worded when a later window
    amendment would word it differently: its id is issued); the rest are what the oracle says of
    all inputs, in the specification's order."""
    sc = migration.scenario
    on = _on_topics(sc)
    old, everything = _by_id(migration.before), _by_id(migration.expected)
    old_ids = set().union(*old.values())
    for topic in SCHEMA:
        ids = Counter(oid for oid, _, _ in on[topic])
        assert not [i for i, n in ids.items() if n > 1], f"{topic}: issued twice"
        want = {**everything[topic], **old[topic]}
        assert kit.as_rows(rec for _, rec, _ in on[topic]) == kit.as_rows(want.values()), topic
        for oid, _, raw in on[topic]:
            assert sc.codec.fingerprint_order(raw) == (REVERSED_ORDER if oid in old_ids else _now(sc)), oid
    new = [rec for oid, rec, _ in on[ACTIONS] if oid not in old_ids]
    assert sc.topup in new and any(r.supersedes in old_ids for r in new if r.subject_kind.value == "ENTITLEMENT")
    assert sc.counts()[DEADLETTER] == 0


def test_replays_across_the_change_publish_nothing(migration):
    sc = migration.scenario
    before = sc.counts()
    for topic in INPUTS:
        res = sc.cli("replay", topic, "--from", "0", "--yes")
        assert res.returncode == 0 and res.stdout.startswith("published 0 records"), res.stdout + res.stderr
        assert " 0 undecodable or invalid" in res.stderr, res.stderr
    assert sc.counts() == before


def test_lost_work_is_republished_in_the_new_order_with_the_same_body(migration):
    sc = migration.scenario
    old_ids = {r.remedy_id for r in migration.before.remedies}
    raw_of = {oid: raw for oid, _, raw in _on_topics(sc)[ACTIONS]}
    ent = sorted((r for r in sc.expected if r.subject_kind.value == "ENTITLEMENT"), key=lambda r: r.remedy_id)
    lost_old = next(r for r in ent if r.remedy_id in old_ids)
    lost_new = next(r for r in ent if r.remedy_id not in old_ids)
    sc.forget([lost_old, lost_new])
    res = sc.cli("replay", "entitlement.states.v1", "--from", "0", "--yes")
    assert res.returncode == 0 and res.stdout.startswith("published 2 records (2 remedies"), res.stdout + res.stderr
    copies: dict[str, list[bytes]] = {}
    for m in read_topic(sc.settings, ACTIONS, idle=1):
        copies.setdefault(sc.codec.decode_obj("remedy_action", m.value()).remedy_id, []).append(m.value())
    first, again = copies[lost_old.remedy_id]
    assert sc.codec.fingerprint_order(first) == REVERSED_ORDER and sc.codec.fingerprint_order(again) == _now(sc)
    header = len(sc.codec.header("remedy_action"))
    assert again[header:] == first[10:] and again == sc.codec.encode_obj("remedy_action", lost_old)
    assert copies[lost_new.remedy_id] == [raw_of[lost_new.remedy_id]] * 2      # same inputs, same bytes
    assert all(sc.redis.sismember(sc.keys.ledger, r.remedy_id) for r in (lost_old, lost_new))


def test_ledger_rebuild_across_the_change(migration):
    sc = migration.scenario
    user = sc.topup.user_id          # a PAYOUT before #17, its top-up after
    status = sc.cli("status", user)
    assert status.returncode == 0 and sc.topup.remedy_id in status.stdout and "20,000 won" in status.stdout

    def index() -> dict[str, dict[str, RemedyAction]]:
        return {k.decode(): {rid.decode(): sc.codec.decode_obj("remedy_action", v) for rid, v in sc.redis.hgetall(k).items()}
                for k in sc.redis.scan_iter(f"{sc.keys.user_prefix}*")}

    size, before = sc.redis.scard(sc.keys.ledger), index()
    sc.redis.delete(*sc.redis.scan_iter(f"{sc.settings.redis_prefix}*"))
    res = sc.cli("ledger", "rebuild")
    assert res.returncode == 0 and f"added {size:,}" in res.stdout and "undecodable" not in res.stdout, res.stdout
    assert sc.redis.scard(sc.keys.ledger) == size and index() == before
    assert sc.cli("status", user).stdout == status.stdout
    assert "added 0" in sc.cli("ledger", "rebuild").stdout
    counts = sc.counts()
    for topic in INPUTS:
        res = sc.cli("replay", topic, "--from", "0", "--yes")
        assert res.returncode == 0 and res.stdout.startswith("published 0 records"), res.stdout + res.stderr
    assert sc.counts() == counts
