"""The wire format: single-object Avro, schema evolution, and decode errors that keep the bytes."""
import copy
import json

import pytest

from streams.wire.codec import Codec, DecodeError, EncodeError, MAGIC
from streams.settings import ROOT
from tests.samples import sample

SCHEMAS = sorted(p.stem for p in (ROOT / "schemas").glob("*.avsc"))


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_dir(ROOT / "schemas")


def test_every_record_type_has_a_schema():
    assert SCHEMAS == ["damage_report", "dead_letter", "entitlement_state", "incident_approval", "outage_window",
                       "remedy_action", "review_case", "review_decision", "user_notice"]


@pytest.mark.parametrize("name", SCHEMAS)
def test_round_trip(codec, name):
    data = codec.encode(name, sample(name))
    assert data[:2] == MAGIC and data[2:10] == codec.schema(name).fingerprint
    assert codec.decode(name, data) == sample(name)


def test_money_and_time_are_integers(codec):
    for name in SCHEMAS:
        schema = json.loads((ROOT / "schemas" / f"{name}.avsc").read_text())
        for field in schema["fields"]:
            if field["name"].endswith("_krw"):
                assert "long" in json.dumps(field["type"]) and "double" not in json.dumps(field["type"])
            if field["name"].endswith("_at") and name != "dead_letter" or field["name"] == "failed_at":
                assert "timestamp-millis" in json.dumps(field["type"]), (name, field["name"])


def _with_optional_field(codec, name):
    newer = copy.deepcopy(codec.schema(name).declared)
    newer["fields"].append({"name": "channel_note", "type": ["null", "string"], "default": None})
    return newer


def test_newer_reader_reads_older_writer(codec):
    newer = _with_optional_field(codec, "remedy_action")
    reader = Codec(codec.registry.with_version("remedy_action", newer, current=True))
    old_bytes = codec.encode("remedy_action", sample("remedy_action"))
    assert reader.decode("remedy_action", old_bytes) == {**sample("remedy_action"), "channel_note": None}


def test_older_reader_reads_newer_writer_it_knows(codec):
    newer = _with_optional_field(codec, "remedy_action")
    writer = Codec(codec.registry.with_version("remedy_action", newer, current=True))
    new_bytes = writer.encode("remedy_action", {**sample("remedy_action"), "channel_note": "x"})
    reader = Codec(codec.registry.with_version("remedy_action", newer, current=False))
    assert reader.decode("remedy_action", new_bytes) == sample("remedy_action")
    with pytest.raises(DecodeError, match="unknown writer schema"):
        codec.decode("remedy_action", new_bytes)  # never told about that version


@pytest.mark.parametrize("raw, reason", [
    (b"", "bad magic"),
    (b"{\"json\": true}", "bad magic"),
    (MAGIC + b"\x00" * 8 + b"\x02", "unknown writer schema"),
    (None, "null value"),
])
def test_decode_errors_carry_the_raw_bytes(codec, raw, reason):
    with pytest.raises(DecodeError, match=reason) as err:
        codec.decode("outage_window", raw)
    assert err.value.raw == raw


def test_truncated_and_padded_bodies_are_rejected(codec):
    good = codec.encode("outage_window", sample("outage_window"))
    with pytest.raises(DecodeError, match="corrupt"):
        codec.decode("outage_window", good[:-5])
    with pytest.raises(DecodeError, match="trailing"):
        codec.decode("outage_window", good + b"\x00")


def test_wrong_record_type_for_the_topic(codec):
    with pytest.raises(DecodeError, match="OutageWindow record where .*RemedyAction"):
        codec.decode("remedy_action", codec.encode("outage_window", sample("outage_window")))


def test_unknown_enum_symbol_from_a_newer_writer_is_a_decode_error(codec):
    newer = copy.deepcopy(codec.schema("outage_window").declared)
    newer["fields"][2]["type"]["symbols"].append("DEGRADED")
    writer = Codec(codec.registry.with_version("outage_window", newer, current=True))
    data = writer.encode("outage_window", {**sample("outage_window"), "status": "DEGRADED"})
    reader = Codec(codec.registry.with_version("outage_window", newer, current=False))
    with pytest.raises(DecodeError):
        reader.decode("outage_window", data)


def test_encode_names_the_bad_field(codec):
    with pytest.raises(EncodeError, match="status"):
        codec.encode("outage_window", {**sample("outage_window"), "status": "MAYBE"})


def test_notice_kinds_evolve_without_breaking_readers(codec):
    """REPORT_RECEIVED joined NoticeKind; the schema before it stays readable from history/."""
    old = json.loads((ROOT / "schemas" / "history" / "user_notice.1.avsc").read_text())
    old_writer = Codec(codec.registry.with_version("user_notice", old, current=True))
    old_bytes = old_writer.encode("user_notice", sample("user_notice"))
    # known by fingerprint; a record from before #16 has no locale
    assert codec.decode("user_notice", old_bytes) == {**sample("user_notice"), "locale": None}
    received = {**sample("user_notice"), "kind": "REPORT_RECEIVED"}
    assert codec.decode("user_notice", codec.encode("user_notice", received)) == received
    # A kind newer than the current schema reads as the enum's default instead of failing.
    newer = copy.deepcopy(codec.schema("user_notice").declared)
    newer["fields"][3]["type"]["symbols"].append("REPORT_SOMETHING_NEW")
    writer = Codec(codec.registry.with_version("user_notice", newer, current=True))
    data = writer.encode("user_notice", {**sample("user_notice"), "kind": "REPORT_SOMETHING_NEW"})
    reader = Codec(codec.registry.with_version("user_notice", newer, current=False))
    assert reader.decode("user_notice", data)["kind"] == "REPORT_RECEIVED"


@pytest.mark.parametrize("name", ["entitlement_state", "damage_report"])
def test_records_from_before_locale_still_read(codec, name):
    """#16 added an optional `locale` to the two inputs that carry a user: a record written with the
    schema before it (schemas/history/<name>.1.avsc) decodes, with no locale, and becomes a record."""
    old = json.loads((ROOT / "schemas" / "history" / f"{name}.1.avsc").read_text())
    assert "locale" not in [f["name"] for f in old["fields"]]
    old_writer = Codec(codec.registry.with_version(name, old, current=True))
    before = {k: v for k, v in sample(name).items() if k != "locale"}
    data = old_writer.encode(name, before)
    assert codec.decode(name, data) == {**before, "locale": None}
    assert codec.decode_obj(name, data).locale is None
