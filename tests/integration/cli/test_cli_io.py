"""`makegood publish` / `makegood consume` as a user runs them: the real CLI against the real broker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer

from streams.wire.codec import Codec
from streams.wire.jsonio import JsonRecords
from streams.settings import Settings
from tests.integration.conftest import read_topic
from tests.samples import sample

MAKEGOOD = str(Path(sys.executable).parent / "makegood")
KST_START = "2022-10-15T15:19:00+09:00"


def run(settings: Settings, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace)
    return subprocess.run([MAKEGOOD, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=timeout)


def entitlement(n: int, **changes) -> dict:
    e = dict(sample("entitlement_state"), entitlement_id=f"ent-{n}", user_id=f"u-{n}")
    e.update(changes)
    return e


def test_publish_rejects_bad_lines_and_consume_prints_the_good_ones(
        settings: Settings, codec: Codec, tmp_path: Path) -> None:
    jr = JsonRecords(codec)
    good = [jr.to_json("entitlement_state", entitlement(n)) for n in range(1, 4)]
    good[1]["valid_from"] = KST_START  # an offset timestamp, normalised to UTC Z on the way back
    good[2]["user_id"] = "사용자-3"     # a non-ASCII id: the workers would dead-letter it, so publish refuses it
    lines = [
        json.dumps(good[0]),
        "{not json",                                                   # line 2
        json.dumps(dict(good[0], entitlement_id="ent-x", price_krw=4900.0)),  # line 3: float money
        "",                                                            # blank: skipped
        json.dumps(good[1], ensure_ascii=False),                       # line 5
        json.dumps(dict(good[0], valid_from="2022-10-15T15:19:00")),   # line 6: naive timestamp
        json.dumps(dict(good[0], colour="red")),                       # line 7: unknown field
        json.dumps(good[2], ensure_ascii=False),                       # line 8: user_id not an identifier
    ]
    path = tmp_path / "ents.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    # all or nothing by default: the bad lines are reported and nothing is sent
    whole = run(settings, "publish", "entitlement.states.v1", str(path))
    assert whole.returncode == 2, whole.stderr
    assert whole.stderr.splitlines()[-1].startswith("published 0 of 7 lines: 5 rejected, nothing sent")
    assert read_topic(settings, "entitlement.states.v1", expect=0) == []

    pub = run(settings, "publish", "entitlement.states.v1", str(path), "--skip-invalid")
    assert pub.returncode == 2, pub.stderr
    err = pub.stderr.splitlines()
    assert [ln.split(":")[0] for ln in err[:-1]] == ["line 2", "line 3", "line 6", "line 7", "line 8"]
    assert "price_krw" in err[1] and "valid_from" in err[2] and "colour" in err[3]
    assert err[4] == "line 8: user_id is not a valid identifier: unprintable or non-ASCII character U+C0AC at position 0"
    assert err[-1] == f"published 2, rejected 5 ({settings.topic('entitlement.states.v1')})"

    msgs = read_topic(settings, "entitlement.states.v1", expect=2)
    assert sorted(m.key().decode() for m in msgs) == ["ent-1", "ent-2"]

    con = run(settings, "consume", "entitlement.states.v1", "--from-beginning", "--until-idle", "2")
    assert con.returncode == 0, con.stderr
    out = sorted((json.loads(ln) for ln in con.stdout.splitlines()), key=lambda r: r["entitlement_id"])
    expected = [dict(g) for g in good[:2]]
    expected[1]["valid_from"] = "2022-10-15T06:19:00.000Z"
    assert out == expected
    assert all(ln == json.dumps(json.loads(ln), sort_keys=True, ensure_ascii=False)
               for ln in con.stdout.splitlines())


def test_all_valid_from_stdin_exits_zero_and_meta_and_max(settings: Settings, codec: Codec) -> None:
    jr = JsonRecords(codec)
    window = jr.to_json("outage_window", sample("outage_window"))
    stdin = "\n".join(json.dumps(dict(window, revision=r)) for r in (1, 2)) + "\n"
    pub = run(settings, "publish", "outage.windows.v1", "-", stdin=stdin)
    assert pub.returncode == 0, pub.stderr
    assert pub.stderr.strip().endswith("published 2, rejected 0 "
                                       f"({settings.topic('outage.windows.v1')})")
    con = run(settings, "consume", "outage.windows.v1", "--from-beginning", "--max", "1",
              "--meta", "--until-idle", "10")
    (line,) = con.stdout.splitlines()
    rec = json.loads(line)
    assert rec["_offset"] == 0 and isinstance(rec["_partition"], int) and rec["revision"] == 1


def test_tombstone_publishes_a_null_value(settings: Settings) -> None:
    stdin = json.dumps({"entitlement_id": "ent-gone", "__tombstone__": True}) + "\n"
    pub = run(settings, "publish", "entitlement.states.v1", "-", stdin=stdin)
    assert pub.returncode == 0, pub.stderr
    (msg,) = read_topic(settings, "entitlement.states.v1", expect=1)
    assert msg.key() == b"ent-gone" and msg.value() is None
    con = run(settings, "consume", "entitlement.states.v1", "--from-beginning", "--until-idle", "2")
    assert json.loads(con.stdout) == {"entitlement_id": "ent-gone", "__tombstone__": True}


def test_tombstone_refused_elsewhere(settings: Settings) -> None:
    stdin = json.dumps({"incident_id": "INC-1", "__tombstone__": True}) + "\n"
    pub = run(settings, "publish", "outage.windows.v1", "-", stdin=stdin)
    assert pub.returncode == 2
    assert pub.stderr.startswith("line 1: __tombstone__: tombstones are only for entitlement.states.v1")


def test_consume_reports_undecodable_records_and_goes_on(settings: Settings, codec: Codec) -> None:
    p = Producer({"bootstrap.servers": settings.bootstrap})
    name = settings.topic("damage.reports.v1")
    p.produce(name, key=b"u-9", value=b"\x07\xffnot avro", partition=0)
    p.produce(name, key=b"u-9", value=b"\x00\xffnot avro", partition=0)    # byte 0: a registry id
    p.produce(name, key=b"u-9", value=codec.encode("damage_report", sample("damage_report")), partition=0)
    assert p.flush(10) == 0
    con = run(settings, "consume", "damage.reports.v1", "--from-beginning", "--until-idle", "2")
    assert con.returncode == 0
    unknown_id = int.from_bytes(b"\xffnot", "big")
    assert con.stderr.strip().splitlines() == [
        "partition 0 offset 0: neither registry framing nor Avro single-object encoding (bad magic)",
        f"partition 0 offset 1: unknown schema id {unknown_id} (not in the registry)"]
    (line,) = con.stdout.splitlines()
    assert json.loads(line)["report_id"] == "r-1"


def test_unknown_topic_is_one_line(settings: Settings) -> None:
    res = run(settings, "consume", "remedy.actions.v2", "--until-idle", "1")
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "valid topics: outage.windows.v1" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_refused_delivery_is_an_error(settings: Settings, codec: Codec) -> None:
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ResourceType)
    name = settings.topic("damage.reports.v1")
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    res = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    for fut in admin.incremental_alter_configs([res]).values():
        fut.result()
    jr = JsonRecords(codec)
    small = jr.to_json("damage_report", sample("damage_report"))
    big = dict(small, report_id="r-2", body="x" * 5000)    # valid (bodies up to 50,000), but too large here
    ok = run(settings, "publish", "damage.reports.v1", "-", stdin=json.dumps(small) + "\n")
    assert ok.returncode == 0, ok.stderr
    pub = run(settings, "publish", "damage.reports.v1", "-", stdin="\n" + json.dumps(big) + "\n")
    assert pub.returncode == 1, pub.stderr
    assert f"published 0, rejected 0 ({name})" in pub.stderr
    assert "1 of 1 records were not delivered" in pub.stderr and "line 2: " in pub.stderr
    assert "too large" in pub.stderr and "Traceback" not in pub.stderr
    (msg,) = read_topic(settings, "damage.reports.v1", expect=1)
    assert msg.key() == b"u-9"


def test_output_topics_are_refused_in_one_line(settings: Settings, codec: Codec) -> None:
    forged = dict(JsonRecords(codec).to_json("remedy_action", sample("remedy_action")),
                  action="PAYOUT", amount_krw=99_999_999)
    for topic in ("remedy.actions.v1", "remedy.deadletter.v1"):
        res = run(settings, "publish", topic, "-", stdin=json.dumps(forged) + "\n")
        assert res.returncode == 1
        assert res.stderr.count("\n") == 1
        assert res.stderr.startswith(f"makegood: {topic} is written by the makegood workers"), res.stderr
    assert read_topic(settings, "remedy.actions.v1", expect=0) == []


def test_consume_as_a_group_resumes_where_it_stopped(settings: Settings, codec: Codec) -> None:
    jr = JsonRecords(codec)
    stdin = "".join(json.dumps(jr.to_json("entitlement_state", entitlement(n))) + "\n" for n in (1, 2))
    assert run(settings, "publish", "entitlement.states.v1", "-", stdin=stdin).returncode == 0
    group = settings.topic("cli-reader")
    seen = []
    for _ in range(2):
        con = run(settings, "consume", "entitlement.states.v1", "--group", group, "--max", "1",
                  "--until-idle", "15")
        assert con.returncode == 0, con.stderr
        seen += [json.loads(ln)["entitlement_id"] for ln in con.stdout.splitlines()]
    assert sorted(seen) == ["ent-1", "ent-2"]


def test_what_publish_accepts_the_workers_admit_without_a_dead_letter(settings: Settings, codec: Codec,
                                                                      tmp_path: Path) -> None:
    """The five cases of issue #12 are refused by publish, naming the line and the worker's own
    reason; what it accepts (entitlements, windows, reports) passes a real worker with no dead letter."""
    from tests.integration import kit
    jr = JsonRecords(codec)
    good = [jr.to_json("entitlement_state", entitlement(n)) for n in range(1, 6)]
    bad = [dict(good[0], entitlement_id="bad-1", valid_from=1665814740),          # epoch seconds
           dict(good[0], entitlement_id="bad-2", price_krw=-4900),
           dict(good[0], entitlement_id="bad-3", service="kakaobank"),
           dict(good[0], entitlement_id="bad-4", period_days=0),
           dict(good[0], entitlement_id="bad-5", valid_until="2022-10-01T00:00:00+09:00")]  # < valid_from
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in good[:2] + bad + good[2:]))
    refused = run(settings, "publish", "entitlement.states.v1", str(path))
    assert refused.returncode == 2
    lines = refused.stderr.splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == [f"line {n}" for n in range(3, 8)]
    assert "epoch seconds?" in lines[0] and "price_krw is negative" in lines[1]
    assert "unknown service 'kakaobank'" in lines[2] and "period_days must be at least 1" in lines[3]
    assert "valid_until is before valid_from" in lines[4]
    assert read_topic(settings, "entitlement.states.v1", expect=0) == []

    assert run(settings, "publish", "entitlement.states.v1", str(path), "--skip-invalid").returncode == 2
    from processors.model import to_dict
    windows = "".join(json.dumps(jr.to_json("outage_window", to_dict(w))) + "\n" for w in kit.windows())
    assert run(settings, "publish", "outage.windows.v1", "-", stdin=windows).returncode == 0
    reports = kit.reports(20)
    stdin = "".join(json.dumps(jr.to_json("damage_report", to_dict(r)), ensure_ascii=False) + "\n" for r in reports)
    assert run(settings, "publish", "damage.reports.v1", "-", stdin=stdin).returncode == 0

    workers = kit.Workers(settings, tmp_path)
    try:
        workers.start(1)
        ents = kit.wait_outcomes(settings, "entitlement.states.v1", len(good))
        reps = kit.wait_outcomes(settings, "damage.reports.v1", len(reports))
    finally:
        workers.stop()
    assert not any(k.startswith("dead-letter") for k in {**ents, **reps}), (ents, reps)
    assert read_topic(settings, "remedy.deadletter.v1", idle=1.0) == []
