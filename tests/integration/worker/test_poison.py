"""Bad input on the real broker (issue #11 parts 5 and 6): records that decode but carry a
mangled identifier, bad outage windows seen by every worker, and values of about 1 MiB. Each
becomes exactly one dead letter saying why, and every valid record is still decided."""
from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter

from confluent_kafka import Producer

from processors.batch import evaluate
from processors.model import to_dict
from streams.decide.outputs import DEAD_LETTER_BYTES_MAX
from tests.integration import kit
from tests.integration.conftest import read_topic

POISON_VALUE_BYTES = 1_000_010      # the value: under the broker's ~1 MiB, over any dead letter's room


def _raw(settings, logical, items) -> None:
    """Produce (key, value) pairs as they are, values of up to about 1 MiB included."""
    p = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True,
                  "message.max.bytes": 1_100_000})
    failed = []
    for key, value in items:
        p.produce(settings.topic(logical), key=key, value=value, on_delivery=lambda err, _m: err and failed.append(err))
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed


def _dead_letters(settings, codec, expect: int) -> list[dict]:
    """Every dead letter, waiting a while past `expect` for any that should not be there."""
    return [codec.decode("dead_letter", m.value())
            for m in read_topic(settings, "remedy.deadletter.v1", expect=expect, idle=5, timeout=90)]


def _valid_outputs_match(settings, codec, policy, pub, workers) -> list:
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
    got = kit.settle(settings, codec, len(expected.remedies), workers=workers)
    remedies = [codec.decode_obj("remedy_action", m.value()) for m in got]
    assert kit.as_rows(remedies) == kit.as_rows(expected.remedies), workers.logs()
    notices = [codec.decode_obj("user_notice", m.value())
               for m in read_topic(settings, "remedy.notices.v1", expect=len(expected.notices), idle=2)]
    assert kit.as_rows(notices) == kit.as_rows(expected.notices)
    return remedies


def test_ids_with_control_characters_are_dead_letters_not_incidents(settings, codec, workers, policy):
    """The issue's mangled windows (`INC-H\\x0fLD-...`) and their like on every input topic, and
    ids mangled into other valid-looking ids under their original key: a dead letter each,
    naming the field, and no incident, remedy or case made of them."""
    workers.start(2)
    pub = kit.Published()
    good = kit.entitlements(300)
    windows = kit.windows()
    reports = kit.reports(60)
    mangled_ents = [dataclasses.replace(good[0], entitlement_id="e0\x00"),
                    dataclasses.replace(good[1], user_id="u1\x1b[2J"),
                    dataclasses.replace(good[2], entitlement_id="e2\u200b"),
                    dataclasses.replace(good[3], service="melon\x7f")]
    mangled_windows = [dataclasses.replace(w, incident_id=i, revision=9) for w, i in zip(
        windows[1:] * 2, ["INC-H\x0fLD-20221015", "INC-20221015-PANGYO\x00", "INC-20221015-PANGY\x0f",
                          "inc-20221015-pangyo"])]
    mangled_reports = [dataclasses.replace(reports[0], report_id="r0\x01"),
                       dataclasses.replace(reports[1], reporter_id="u\x0a1"),
                       dataclasses.replace(reports[2], incident_id="INC-20221015-PANG\x19O"),
                       dataclasses.replace(next(r for r in reports if r.business_id), business_id="BRN\x00")]
    kit.publish(settings, codec, "entitlement.states.v1", good, pub)
    kit.publish(settings, codec, "entitlement.states.v1", mangled_ents)
    # a flip inside the id that leaves it valid-looking: only the key (still the real id) tells
    flipped = dataclasses.replace(windows[2], incident_id="INC-20221015-PANGYN", revision=9)
    kit.publish(settings, codec, "outage.windows.v1", windows, pub)
    kit.publish(settings, codec, "outage.windows.v1", mangled_windows)
    _raw(settings, "outage.windows.v1", [(kit.INCIDENT.encode(), codec.encode_obj("outage_window", flipped))])
    remedies = _valid_outputs_match(settings, codec, policy, pub, workers)
    kit.publish(settings, codec, "damage.reports.v1", reports[3:], pub)
    kit.publish(settings, codec, "damage.reports.v1", mangled_reports)
    _raw(settings, "damage.reports.v1", [(reports[4].reporter_id.encode(), codec.encode_obj(
        "damage_report", dataclasses.replace(reports[4], report_id="r-flipped", reporter_id="u9999")))])
    remedies = _valid_outputs_match(settings, codec, policy, pub, workers)
    assert {r.incident_id for r in remedies} == {kit.INCIDENT}

    mangled = len(mangled_ents) + len(mangled_windows) + len(mangled_reports) + 2
    dead = _dead_letters(settings, codec, mangled)
    per_record = Counter((d["source_topic"], d["source_partition"], d["source_offset"]) for d in dead)
    assert len(per_record) == mangled and set(per_record.values()) == {1}, per_record   # once per cluster
    assert all(d["stage"] == "VALIDATE" for d in dead)
    reasons = sorted(d["error_message"] for d in dead)
    assert sum("incident_id is not a valid identifier" in r for r in reasons) == 5, reasons   # 4 windows, 1 report
    for name in ("entitlement_id", "user_id", "report_id", "reporter_id", "business_id"):
        assert any(r.startswith(f"{name} is not a valid identifier: unprintable") for r in reasons), (name, reasons)
    assert any("service is not a valid identifier" in r for r in reasons)
    assert "the record's key is not its incident_id" in reasons
    assert "the record's key is not its reporter_id" in reasons
    reviews = [codec.decode_obj("review_case", m.value()) for m in read_topic(settings, "remedy.reviews.v1", idle=2)]
    assert not any("\x00" in str(to_dict(r)) or "\x01" in str(to_dict(r)) for r in reviews)


def test_a_bad_window_is_dead_lettered_once_per_cluster(settings, codec, workers):
    """Every worker reads every outage window and finds the same bad ones; the cluster
    publishes one dead letter for each (the issue counted 702 for 500, one per worker)."""
    workers.start(2)
    workers.wait_ready()
    w = kit.windows()[1]
    valid = codec.encode_obj("outage_window", w)
    bad = []
    for i in range(150):
        kind = i % 3
        value = (b"\x00not a window %d" % i if kind == 0 else valid[: 10 + i % (len(valid) - 12)] if kind == 1
                 else codec.encode_obj("outage_window", dataclasses.replace(w, incident_id=f"INC-{i}\x0fX")))
        bad.append((f"INC-BAD-{i}".encode(), value))
    _raw(settings, "outage.windows.v1", bad)
    dead = _dead_letters(settings, codec, len(bad))
    per_record = Counter(d["source_offset"] for d in dead)
    assert len(dead) == len(bad) and len(per_record) == len(bad), \
        f"{len(dead)} dead letters for {len(bad)} bad windows: {sum(n - 1 for n in per_record.values())} duplicates"
    assert all(workers.alive())


def test_a_one_mib_value_on_each_input_topic_is_dead_lettered_and_what_follows_decided(
        settings, codec, workers, policy):
    """A poison pill must not stop the cluster: a value just under the broker's limit on each
    input topic (undecodable junk, and a record that decodes but is absurdly large) becomes a
    dead letter that fits its topic (a prefix, the size and a SHA-256), and records published
    after it are decided."""
    workers.start(2)
    pub = kit.Published()
    ents, rest = kit.entitlements(400)[:200], kit.entitlements(400)[200:]
    junk = bytes(range(256)) * (POISON_VALUE_BYTES // 256) + b"\xff" * (POISON_VALUE_BYTES % 256)
    huge_window = dataclasses.replace(kit.windows()[1], site="s" * 999_000)
    huge_ent = dataclasses.replace(ents[0], entitlement_id="e" * 999_000)
    huge_report = dataclasses.replace(kit.reports(1)[0], body="b" * 999_000)
    big = {"outage.windows.v1": [(b"INC-HUGE", junk),
                                 (kit.INCIDENT.encode(), codec.encode_obj("outage_window", huge_window))],
           "entitlement.states.v1": [(b"e-huge", junk), (b"e-huge-2", codec.encode_obj("entitlement_state", huge_ent))],
           "damage.reports.v1": [(b"u-huge", junk),
                                 (huge_report.reporter_id.encode(), codec.encode_obj("damage_report", huge_report))]}
    assert all(900_000 < len(v) <= POISON_VALUE_BYTES for items in big.values() for _, v in items)
    kit.publish(settings, codec, "entitlement.states.v1", ents, pub)
    for logical, items in big.items():
        _raw(settings, logical, items)
    kit.publish(settings, codec, "entitlement.states.v1", rest, pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    _valid_outputs_match(settings, codec, policy, pub, workers)
    kit.publish(settings, codec, "damage.reports.v1", kit.reports(40), pub)
    _valid_outputs_match(settings, codec, policy, pub, workers)

    dead = _dead_letters(settings, codec, 6)
    assert len(dead) == 6, [(d["key"], d["error_message"][:80]) for d in dead]
    by_key = {d["key"]: d for d in dead}
    for items in big.values():
        for key, value in items:
            d = by_key[key]
            assert d["value"] == value[:DEAD_LETTER_BYTES_MAX]
            assert f"value truncated to its first {DEAD_LETTER_BYTES_MAX:,} of {len(value):,} bytes" in d["error_message"]
            assert hashlib.sha256(value).hexdigest() in d["error_message"]
    assert by_key[b"e-huge"]["stage"] == "DECODE" and by_key[b"e-huge-2"]["stage"] == "VALIDATE"
    assert "longest allowed 128" in by_key[b"e-huge-2"]["error_message"]
    assert "body is 999,000 characters" in by_key[huge_report.reporter_id.encode()]["error_message"]
    assert "site is 999,000 characters" in by_key[kit.INCIDENT.encode()]["error_message"]
    assert all(workers.alive())
