"""Notices and review decisions (#16) through two real workers on the real broker and Redis.

Checked against the batch evaluator given the same inputs (decisions included): the digests,
the review payouts (once; a changed decision tops up; a repeated one pays nothing), the dead
letter of a decision for an unknown case, and records written with the schemas before `locale`.
"""
from __future__ import annotations

import dataclasses
import json


from processors import ids
from processors.batch import evaluate
from processors.model import NoticeKind, ReviewDecision, Verdict
from streams.settings import ROOT
from streams.wire.codec import Codec, SchemaRegistry
from tests.integration import kit
from streams.kafka.topics import admin_client
from tests.integration.cli.test_cli_io import run
from tests.integration.conftest import read_topic

DECISIONS = "remedy.review-decisions.v1"


def before_locale(name: str) -> Codec:
    """A producer still on the schema before #16 (single-object encoding, old fingerprint)."""
    old = json.loads((ROOT / "schemas" / "history" / f"{name}.1.avsc").read_text())
    return Codec(SchemaRegistry.from_dir(ROOT / "schemas").with_version(name, old, current=True))


def wait_for_group(settings, workers, timeout: float = 120) -> None:
    """Until the reports group has committed to the end of the decisions topic."""
    import time
    from confluent_kafka import Consumer, TopicPartition
    real = settings.topic(DECISIONS)
    c = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": settings.reports_group})
    try:
        parts = [TopicPartition(real, p) for p in c.list_topics(real, timeout=10).topics[real].partitions]
        ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = {tp.partition: tp.offset for tp in c.committed(parts, timeout=10)}
            if all(done[p] >= end for p, end in ends.items() if end > 0):
                return
            assert any(workers.alive()), workers.logs()
            time.sleep(1)
        raise AssertionError(f"decisions not consumed: {done} of {ends}")
    finally:
        c.close()


def decided(case, verdict=Verdict.APPROVE, amount=None, at=0, note="checked receipts") -> ReviewDecision:
    return ReviewDecision(case_id=case.case_id, review_id=case.review_id, reporter_id=case.reporter_id,
                          verdict=verdict, amount_krw=amount, reviewer_id="reviewer-1", note=note,
                          decided_at=kit.START + (40 * kit.DAY) + at)


def test_digests_and_review_decisions_match_the_evaluator(settings, codec, workers, policy):
    workers.start(2)
    pub = kit.Published()
    ents = kit.entitlements(300)
    # three languages of record: none (the policy's Korean), English, Korean by region tag
    ents = [dataclasses.replace(e, locale=[None, "en-US", "ko-KR"][i % 3]) for i, e in enumerate(ents)]
    old_style = [e for e in ents if e.locale is None]
    kit.publish(settings, codec, "entitlement.states.v1", old_style, pub, writer=before_locale("entitlement_state"))
    kit.publish(settings, codec, "entitlement.states.v1", [e for e in ents if e.locale is not None], pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    # reports once the entitlement remedies are out, so "already covered" is decidable: a paid
    # service report triaged before its reporter's remedy is ledgered goes to review (DESIGN §3)
    kit.settle(settings, codec, len(evaluate(policy, pub.windows, pub.entitlements, []).remedies),
               workers=workers)
    reports = kit.reports(80)
    # by reporter, so that each reporter's reports keep their order (the evaluator folds them in it)
    reports = [dataclasses.replace(r, locale="en" if int(r.reporter_id.lstrip("biazu")) % 2 else None)
               for r in reports]
    kit.publish(settings, codec, "damage.reports.v1", [r for r in reports if r.locale is None], pub,
                writer=before_locale("damage_report"))
    kit.publish(settings, codec, "damage.reports.v1", [r for r in reports if r.locale is not None], pub)
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
    kit.settle(settings, codec, len(expected.notices), workers=workers, topic="remedy.notices.v1")
    cases = [codec.decode_obj("review_case", m.value())
             for m in read_topic(settings, "remedy.reviews.v1", expect=len(expected.reviews))]
    large = sorted((c for c in cases if c.reason.name == "LARGE_BUSINESS_LOSS"), key=lambda c: c.case_id)
    assert len(large) >= 3, "the scenario must send large business losses to review"
    a, b, c = large[:3]
    first = decided(a, amount=300_000)
    stray = dataclasses.replace(decided(a, amount=1_000), case_id=ids.case_id(kit.INCIDENT, a.reporter_id, "none"))
    kit.publish(settings, codec, DECISIONS, [
        first, first,                                          # the same decision twice: pays once
        decided(a, amount=450_000, at=1), decided(a, amount=200_000, at=2),   # tops up, then nothing
        decided(b, amount=120_000),
        decided(c, verdict=Verdict.DENY),
        stray,                                                 # no such case: a dead letter
    ], pub)
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports, decisions=pub.decisions)
    assert len(expected.invalid) == 1
    kit.settle(settings, codec, len(expected.notices), workers=workers, topic="remedy.notices.v1")
    kit.settle(settings, codec, 1, workers=workers, topic="remedy.deadletter.v1")
    t = kit.tally(settings, codec, expected, dead=[i.source for i in expected.invalid])
    assert t.clean, "\n".join(t.problems) + workers.logs()

    got = kit.remedies_on_topic(settings, codec)
    review = sorted((r for r in got if r.rule_id == "business-payout-review"), key=lambda r: r.decided_at)
    assert [(r.subject_id, r.amount_krw) for r in review if r.subject_id == a.case_id] == \
        [(a.case_id, 300_000), (a.case_id, 150_000)]
    assert [r.amount_krw for r in review if r.subject_id == b.case_id] == [120_000]
    assert not [r for r in review if r.subject_id == c.case_id]
    assert all(r.source.topic == settings.topic(DECISIONS) for r in review)    # lineage to the decision
    top_up = next(r for r in review if r.amount_krw == 150_000)
    assert top_up.supersedes == next(r.remedy_id for r in review if r.amount_krw == 300_000)

    (letter,) = [codec.decode("dead_letter", m.value()) for m in read_topic(settings, "remedy.deadletter.v1")]
    assert letter["error_class"] == "UnknownCase" and "unknown case" in letter["error_message"]
    assert letter["source_topic"] == settings.topic(DECISIONS)

    notices = [codec.decode_obj("user_notice", m.value()) for m in read_topic(settings, "remedy.notices.v1")]
    assert {n.locale for n in notices} == {"ko", "en"}
    for n in notices:
        assert "checked receipts" not in n.message and "secret-body" not in n.message
        if n.kind is NoticeKind.REMEDY_ISSUED:
            assert all(rid in n.message for rid in n.remedy_ids)
    decided_notices = [n for n in notices if n.kind is NoticeKind.REVIEW_DECIDED]
    assert len(decided_notices) == 5     # first, top-up, unchanged, b approved, c denied
    # support sees the denied case decided, not waiting for a review (it paid nothing)
    for case in (a, c):
        status = run(settings, "status", case.reporter_id, "--json")
        assert status.returncode == 0, status.stderr
        states = {x["case_id"]: x["state"] for x in json.loads(status.stdout)["review_cases"]}
        assert states[case.case_id] == "decided", (case.case_id, states)
    # a report record from before #16 was answered in the policy's language (Korean)
    old_ids = {r.report_id for r in reports if r.locale is None}
    assert all(n.locale == "ko" for n in notices if n.report_id in old_ids and n.kind is not NoticeKind.REVIEW_DECIDED)


def test_a_replayed_decision_pays_nothing_new(settings, codec, workers, policy):
    """Every decision read again from the start (the reports group's offsets deleted) and sent
    again: each case knows the decisions it applied and the ledger every id, so nothing new."""
    workers.start(1)
    pub = kit.Published()
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    big = [r for r in kit.reports(60) if r.claimed_loss_krw and r.claimed_loss_krw > 500_000]
    kit.publish(settings, codec, "damage.reports.v1", big, pub)
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
    cases = [codec.decode_obj("review_case", m.value())
             for m in read_topic(settings, "remedy.reviews.v1", expect=len(expected.reviews), timeout=120)]
    kit.publish(settings, codec, DECISIONS, [decided(c, amount=250_000) for c in cases], pub)
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports, decisions=pub.decisions)
    kit.settle(settings, codec, len(expected.remedies), workers=workers)
    before = len(read_topic(settings, "remedy.notices.v1"))
    workers.stop()
    admin = admin_client(settings)
    for fut in admin.delete_consumer_groups([settings.reports_group], request_timeout=30).values():
        fut.result()
    workers.start(1)
    kit.publish(settings, codec, DECISIONS, [decided(c, amount=250_000) for c in cases], pub)   # and resent
    wait_for_group(settings, workers)
    t = kit.tally(settings, codec, expected)
    assert t.clean, t.examples + [workers.logs()]
    assert len(read_topic(settings, "remedy.notices.v1")) == before
    paid = [r for r in kit.remedies_on_topic(settings, codec) if r.rule_id == "business-payout-review"]
    assert len(paid) == len(cases) and all(r.amount_krw == 250_000 for r in paid)
