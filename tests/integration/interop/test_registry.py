"""#14: the Confluent framing against the client library the Python peers use.

A platform service writes with confluent-kafka's plain `AvroSerializer` (its own copy of the
schema text, auto-registered: to Apicurio another version of the subject, so another id the
worker has never seen), a worker decides, and billing reads the remedies with the plain
`AvroDeserializer`. Evolution is enforced by the registry itself: an added optional field is
accepted and read by old and new readers, an added required field is refused, and
`makegood schemas check` says so before anything is published.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from processors.batch import evaluate
from processors.model import Source, to_dict
from processors.policy import load_policy
from streams.errors import SchemaIncompatible
from streams.settings import ROOT
from streams.wire.codec import SchemaRegistry
from streams.wire.framing import check_schemas, open_codec
from tests.integration import kit
from tests.integration.conftest import read_topic

ENTS, WINDOWS, ACTIONS, DEADLETTER = ("entitlement.states.v1", "outage.windows.v1", "remedy.actions.v1",
                                      "remedy.deadletter.v1")


def _schema_text(name: str) -> str:
    return (ROOT / "schemas" / f"{name}.avsc").read_text()


def _with_field(name: str, field: dict) -> dict:
    declared = json.loads(_schema_text(name))
    declared = copy.deepcopy(declared)
    declared["fields"].append(field)
    return declared


OPTIONAL = {"name": "campaign", "type": ["null", "string"], "default": None}
REQUIRED = {"name": "campaign", "type": "string"}


def test_platform_serializer_in_worker_out_billing_deserializer(settings, codec, workers):
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    client = SchemaRegistryClient(settings.schema_registry_config())
    ctx = lambda logical: SerializationContext(settings.topic(logical), MessageField.VALUE)  # noqa: E731
    win_ser = AvroSerializer(client, _schema_text("outage_window"))
    ent_ser = AvroSerializer(client, _schema_text("entitlement_state"))
    # a platform service already on a newer, compatible EntitlementState (one optional field more)
    newer_ser = AvroSerializer(client, json.dumps(_with_field("entitlement_state", OPTIONAL)))
    workers.start(1)

    p = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True})
    pub = kit.Published()

    def send(logical, key, value, record):
        def done(err, msg):
            assert err is None, err
            pub.add(logical, record, Source(msg.topic(), msg.partition(), msg.offset()))
        p.produce(settings.topic(logical), key=key.encode(), value=value, on_delivery=done)

    ents = kit.entitlements(60, seed=14)
    for i, e in enumerate(ents):
        value = to_dict(e)
        ser = newer_ser if i % 3 == 0 else ent_ser
        if ser is newer_ser:
            value = dict(value, campaign="launch")
        send(ENTS, e.entitlement_id, ser(value, ctx(ENTS)), e)
    for w in kit.windows():
        send(WINDOWS, w.incident_id, win_ser(to_dict(w), ctx(WINDOWS)), w)
    # a record naming a schema id the registry never issued: a dead letter, with the reason
    p.produce(settings.topic(ENTS), key=b"ghost", value=b"\x00\x7f\xff\xff\xf0" + b"\x02")
    assert p.flush(30) == 0
    assert ent_ser(to_dict(ents[1]), ctx(ENTS))[:1] == b"\x00"        # the serializer frames as we do

    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports).remedies
    assert expected
    msgs = kit.settle(settings, codec, len(expected), workers=workers)
    billing = AvroDeserializer(client)
    got = [billing(m.value(), SerializationContext(m.topic(), MessageField.VALUE)) for m in msgs]
    assert all(m.value()[:1] == b"\x00" for m in msgs)
    assert sorted((g["remedy_id"], g["action"], g["amount_krw"], g["extend_hours"]) for g in got) == \
        sorted((r.remedy_id, r.action.value, r.amount_krw, r.extend_hours) for r in expected)
    # the worker's own decoding agrees with the plain deserializer, field by field
    ours = {r.remedy_id: to_dict(r) for r in (codec.decode_obj("remedy_action", m.value()) for m in msgs)}
    for g in got:
        assert ours[g["remedy_id"]]["decided_at"] == int(g["decided_at"].timestamp() * 1000)
        assert ours[g["remedy_id"]]["user_id"] == g["user_id"]

    (dead,) = [codec.decode("dead_letter", m.value()) for m in read_topic(settings, DEADLETTER, expect=1)]
    assert dead["stage"] == "DECODE" and "unknown schema id 2147483632" in dead["error_message"], dead


def test_a_compatible_change_is_read_by_old_and_new_readers(settings):
    old = open_codec(settings)
    new_registry = SchemaRegistry.from_dir(settings.schemas_dir).with_version(
        "damage_report", _with_field("damage_report", OPTIONAL), current=True)
    new = open_codec(settings, registry=new_registry)        # registers a second version
    assert new.header("damage_report") != old.header("damage_report")
    report = to_dict(kit.reports(1, seed=2)[0])
    by_new = new.encode("damage_report", dict(report, campaign="x"))
    by_old = old.encode("damage_report", report)
    fresh_old = open_codec(settings)     # has never seen the new id: fetches it from the registry
    assert fresh_old.decode("damage_report", by_new) == report
    assert new.decode("damage_report", by_old) == dict(report, campaign=None)


def test_an_incompatible_change_is_refused_and_check_says_so(settings, tmp_path):
    open_codec(settings)                  # the current schemas, registered
    bad = SchemaRegistry.from_dir(settings.schemas_dir).with_version(
        "damage_report", _with_field("damage_report", REQUIRED), current=True)
    with pytest.raises(SchemaIncompatible, match="damage_report"):
        open_codec(settings, registry=bad)
    for path in settings.schemas_dir.glob("*.avsc"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "damage_report.avsc").write_text(json.dumps(_with_field("damage_report", REQUIRED)))
    (tmp_path / "user_notice.avsc").write_text(json.dumps(_with_field("user_notice", OPTIONAL)))
    from dataclasses import replace
    verdicts = {name: v for name, _, v in check_schemas(replace(settings, schemas_dir=tmp_path))}
    assert verdicts["damage_report"] == "INCOMPATIBLE" and verdicts["user_notice"] == "compatible"
    assert {v for n, v in verdicts.items() if n not in ("damage_report", "user_notice")} == {"registered"}
    res = subprocess.run([sys.executable, "-m", "streams.cli", "schemas", "check"], capture_output=True, text=True,
                         env=dict(os.environ, MAKEGOOD_NAMESPACE=settings.namespace), timeout=60)
    assert res.returncode == 0 and res.stdout.count("registered") == 9, res.stdout + res.stderr
