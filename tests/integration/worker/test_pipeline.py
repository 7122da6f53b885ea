"""The live pipeline on the real broker and Redis, checked against the batch evaluator."""
from __future__ import annotations

import dataclasses
import time
from collections import Counter

import redis as redis_lib

from processors.batch import evaluate
from streams.ledger.store import Keys
from tests.integration import kit
from tests.integration.conftest import read_topic


def _oracle(policy, pub: kit.Published):
    return evaluate(policy, pub.windows, pub.entitlements, pub.reports)


def _decoded(settings, codec, logical, schema, **kw):
    return [codec.decode_obj(schema, m.value()) for m in read_topic(settings, logical, **kw)]


def _assert_same_remedies(settings, codec, expected, workers):
    msgs = kit.settle(settings, codec, len(expected), workers=workers)
    got = [codec.decode_obj("remedy_action", m.value()) for m in msgs]
    missing = kit.as_rows(expected) - kit.as_rows(got)
    extra = kit.as_rows(got) - kit.as_rows(expected)
    assert not missing and not extra, (f"{len(missing)} missing, {len(extra)} extra\n"
                                       + "\n".join(sorted(missing)[:3] + sorted(extra)[:3]) + workers.logs())
    return got


def test_reference_policy_matches_the_batch_evaluator(settings, codec, workers, policy):
    workers.start(1)
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(600), pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    expected = _oracle(policy, pub)
    _assert_same_remedies(settings, codec, expected.remedies, workers)
    # reports once the entitlement remedies are out, so "already covered" is decidable
    kit.publish(settings, codec, "damage.reports.v1", kit.reports(120), pub)
    expected = _oracle(policy, pub)
    got = _assert_same_remedies(settings, codec, expected.remedies, workers)
    assert {r.action.value for r in got} >= {"EXTEND", "CREDIT", "GRANT", "PAYOUT"}
    assert any(r.supersedes for r in got), "the amended window and amended cases must top up"
    reviews = _decoded(settings, codec, "remedy.reviews.v1", "review_case", expect=len(expected.reviews))
    assert kit.as_rows(reviews) == kit.as_rows(expected.reviews)
    notices = _decoded(settings, codec, "remedy.notices.v1", "user_notice", expect=len(expected.notices))
    assert kit.as_rows(notices) == kit.as_rows(expected.notices)


def test_order_free_entitlements_after_close_amendments_and_early_reports(settings, codec, workers, policy):
    workers.start(1)
    pub = kit.Published()
    first, late = kit.entitlements(500)[:250], kit.entitlements(500)[250:]
    open_, closed, amended = kit.windows()
    # reports before their incident exists at all
    kit.publish(settings, codec, "damage.reports.v1", kit.reports(60), pub)
    kit.publish(settings, codec, "entitlement.states.v1", first, pub)
    kit.publish(settings, codec, "outage.windows.v1", [open_, closed], pub)
    _assert_same_remedies(settings, codec, _oracle(policy, pub).remedies, workers)
    # entitlements published after the window closed, then the window lengthened
    kit.publish(settings, codec, "entitlement.states.v1", late, pub)
    kit.publish(settings, codec, "outage.windows.v1", [amended], pub)
    got = _assert_same_remedies(settings, codec, _oracle(policy, pub).remedies, workers)
    assert any(r.supersedes for r in got if r.rule_id == "gift-shopping-expired")


def test_late_older_revision_changes_nothing(settings, codec, workers, policy):
    workers.start(1)
    pub = kit.Published()
    open_, closed, amended = kit.windows()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(200), pub)
    kit.publish(settings, codec, "outage.windows.v1", [open_, amended], pub)
    expected = _oracle(policy, pub)
    _assert_same_remedies(settings, codec, expected.remedies, workers)
    kit.publish(settings, codec, "outage.windows.v1", [closed])   # revision 2 arrives last
    time.sleep(3)
    got = _decoded(settings, codec, "remedy.actions.v1", "remedy_action", idle=2)
    assert kit.as_rows(got) == kit.as_rows(expected.remedies)


def test_two_workers_give_the_same_result_as_one(settings, codec, workers, policy):
    workers.start(2)
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(800, seed=3), pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    _assert_same_remedies(settings, codec, _oracle(policy, pub).remedies, workers)
    kit.publish(settings, codec, "damage.reports.v1", kit.reports(100, seed=5), pub)
    _assert_same_remedies(settings, codec, _oracle(policy, pub).remedies, workers)
    assert all(workers.alive())
    logs = [f.read_text(errors="replace") for f in sorted(workers.logdir.glob("worker-*.log"))]
    assert len(logs) == 2 and all("assigned entitlement partitions" in log for log in logs)


def test_a_sweep_decided_in_helper_processes_gives_the_same_result(settings, codec, workers, policy):
    workers.start(1, env={"MAKEGOOD_SWEEP_PROCESSES": "2"})
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(3_000, seed=5), pub)
    kit.wait_outcomes(settings, "entitlement.states.v1", 3_000)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    _assert_same_remedies(settings, codec, _oracle(policy, pub).remedies, workers)
    assert "in 2 processes" in workers.logs()


def test_sigkill_mid_sweep_loses_nothing_and_ledgers_each_id_once(settings, codec, workers, policy):
    n = 20_000
    workers.start(1)
    pub = kit.Published()
    open_, closed, amended = kit.windows()
    kit.publish(settings, codec, "outage.windows.v1", [open_], pub)
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(n, seed=99), pub)
    kit.wait_outcomes(settings, "entitlement.states.v1", n)
    kit.publish(settings, codec, "outage.windows.v1", [closed, amended], pub)
    expected = _oracle(policy, pub).remedies
    # kill the worker in the worst place: a chunk already ledgered and the next one in flight
    # (produced, perhaps acked, not yet ledgered)
    ledger = redis_lib.Redis.from_url(settings.redis_url)
    keys = Keys(settings.redis_prefix)
    ledger_key = keys.ledger
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (ledger.scard(ledger_key) > 0 and ledger.hlen(keys.inflight) > 0):
        time.sleep(0.005)
    workers.kill(0)
    at_kill = ledger.scard(ledger_key)
    on_topic = len(read_topic(settings, "remedy.actions.v1", idle=1, timeout=30))
    assert 0 < on_topic < len(expected), f"the kill did not land mid-sweep ({on_topic}/{len(expected)})"
    workers.start(1)
    msgs = kit.settle(settings, codec, len(expected), workers=workers, timeout=240)
    got = [codec.decode_obj("remedy_action", m.value()) for m in msgs]
    assert kit.as_rows(got) == kit.as_rows(expected)
    ids = Counter(r.remedy_id for r in got)
    duplicates = sum(c - 1 for c in ids.values())
    assert ledger.scard(ledger_key) >= len(ids)
    print(f"\nkill test: {len(expected)} remedies, {on_topic} on the topic and {at_kill} ids ledgered at the kill, "
          f"{duplicates} duplicate records (same remedy_id) reached the topic")


def test_poison_records_become_dead_letters_and_the_rest_is_processed(settings, codec, workers, policy):
    workers.start(1)
    pub = kit.Published()
    good = kit.entitlements(50)
    bad_ent = dataclasses.replace(good[0], entitlement_id="bad-1", price_krw=-5)
    unknown_service = dataclasses.replace(good[1], entitlement_id="bad-2", service="cyworld")
    kit.publish(settings, codec, "entitlement.states.v1",
                good[:25] + [bad_ent, unknown_service] + good[25:], pub,
                raw=[(b"bad-3", b"not avro at all"), (b"bad-4", codec.encode_obj("entitlement_state", good[2])[:-4])])
    w = kit.windows()
    broken = dataclasses.replace(w[1], revision=9, ended_at=w[1].started_at - 1)
    kit.publish(settings, codec, "outage.windows.v1", w, pub, raw=[(b"INC-X", b"\x00garbage")])
    kit.publish(settings, codec, "outage.windows.v1", [broken])
    rep = kit.reports(20)
    absurd = dataclasses.replace(rep[0], report_id="bad-r", claimed_loss_krw=10**15)
    kit.publish(settings, codec, "damage.reports.v1", rep, pub,
                raw=[(b"u1", b"{\"report_id\": \"json\"}")])
    kit.publish(settings, codec, "damage.reports.v1", [absurd])
    # the valid records: exactly the oracle's remedies (the oracle only saw valid ones)
    valid = kit.Published(pub.windows, [(e, s) for e, s in pub.entitlements if e.entitlement_id.startswith("e")],
                          pub.reports)
    _assert_same_remedies(settings, codec, _oracle(policy, valid).remedies, workers)
    dead = [codec.decode("dead_letter", m.value())
            for m in read_topic(settings, "remedy.deadletter.v1", expect=8, idle=3)]
    by_key = {d["key"]: d for d in dead}
    assert set(by_key) >= {b"bad-1", b"bad-2", b"bad-3", b"bad-4", b"INC-X", b"u1"}
    assert by_key[b"bad-3"]["stage"] == "DECODE" and by_key[b"bad-3"]["value"] == b"not avro at all"
    assert by_key[b"bad-1"]["stage"] == "VALIDATE" and "price" in by_key[b"bad-1"]["error_message"]
    assert "cyworld" in by_key[b"bad-2"]["error_message"]
    assert any(d["source_topic"].endswith("outage.windows.v1") and d["stage"] == "VALIDATE" for d in dead)
    assert any(d["source_topic"].endswith("damage.reports.v1") and d["stage"] == "VALIDATE" for d in dead)
    assert all(workers.alive())


def test_records_of_a_worker_that_died_before_its_ledger_write_are_not_published_twice(
        settings, codec, workers, policy):
    """A worker acked by the broker but killed before its ledger write leaves an in-flight mark;
    the worker taking over reads the output topics from that mark instead of re-publishing."""
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(400, seed=21), pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    expected = _oracle(policy, pub).remedies
    # the dead worker: half of the remedies reached the topic, none reached the ledger
    from confluent_kafka import Producer
    p = Producer(settings.kafka_config())
    for r in expected[: len(expected) // 2]:
        p.produce(settings.topic("remedy.actions.v1"), key=r.user_id.encode(),
                  value=codec.encode_obj("remedy_action", r))
    assert p.flush(30) == 0
    r = redis_lib.Redis.from_url(settings.redis_url)
    r.hset(Keys(settings.redis_prefix).inflight, "dead-worker-1", int(time.time() * 1000) - 5_000)
    workers.start(1)
    got = _assert_same_remedies(settings, codec, expected, workers)
    ids = Counter(x.remedy_id for x in got)
    assert len(ids) == len(expected) and max(ids.values()) == 1, \
        f"{sum(c - 1 for c in ids.values())} duplicate records"
    assert "reconciled in-flight marks of ['dead-worker-1']" in workers.logs()
