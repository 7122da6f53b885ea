"""Plain JSON <-> Avro values: round trips for every schema and messages that name the field."""
from __future__ import annotations

import copy

import pytest

from streams.wire.codec import Codec
from streams.wire.jsonio import JsonRecordError, JsonRecords, format_timestamp, parse_timestamp
from streams.settings import ROOT
from tests.samples import T0, sample

SCHEMAS = ["outage_window", "entitlement_state", "damage_report", "remedy_action",
           "review_case", "user_notice", "dead_letter"]


@pytest.fixture(scope="module")
def jr() -> JsonRecords:
    return JsonRecords(Codec.from_dir(ROOT / "schemas"))


@pytest.mark.parametrize("name", SCHEMAS)
def test_round_trip_every_schema(jr: JsonRecords, name: str) -> None:
    avro = sample(name)
    plain = jr.to_json(name, avro)
    assert jr.to_avro(name, plain) == avro
    # and through the wire
    assert jr.decode(name, jr.encode(name, plain)) == plain


@pytest.mark.parametrize("name", SCHEMAS)
def test_json_form_is_plain(jr: JsonRecords, name: str) -> None:
    import json
    plain = jr.to_json(name, sample(name))
    text = json.dumps(plain, ensure_ascii=False)  # no bytes, no wrappers
    assert '{"long"' not in text and '{"string"' not in text


def test_timestamps_out_as_utc_z_with_millis(jr: JsonRecords) -> None:
    plain = jr.to_json("outage_window", sample("outage_window"))
    assert plain["started_at"] == "2022-10-15T06:00:00.000Z"
    assert plain["ended_at"] == "2022-10-20T13:00:00.000Z"
    assert format_timestamp(T0 + 7) == "2022-10-15T06:00:00.007Z"


def test_iso_with_offset_and_epoch_millis_both_accepted(jr: JsonRecords) -> None:
    base = jr.to_json("outage_window", sample("outage_window"))
    kst = dict(base, started_at="2022-10-15T15:00:00+09:00")
    millis = dict(base, started_at=T0)
    zulu = dict(base, started_at="2022-10-15T06:00:00Z")
    assert jr.to_avro("outage_window", kst) == jr.to_avro("outage_window", millis) \
        == jr.to_avro("outage_window", zulu) == sample("outage_window")


def test_timestamp_inside_union_accepts_iso(jr: JsonRecords) -> None:
    plain = dict(jr.to_json("damage_report", sample("damage_report")), occurred_at="2022-10-15T16:00:00+09:00")
    assert jr.to_avro("damage_report", plain)["occurred_at"] == T0 + 3_600_000


def test_naive_timestamp_rejected_with_hint(jr: JsonRecords) -> None:
    plain = dict(jr.to_json("outage_window", sample("outage_window")), started_at="2022-10-15T15:19:00")
    with pytest.raises(JsonRecordError, match=r"^started_at: .*no UTC offset.*\+09:00"):
        jr.to_avro("outage_window", plain)


def test_nonsense_timestamp_rejected(jr: JsonRecords) -> None:
    with pytest.raises(JsonRecordError, match="ended_at: not an ISO-8601"):
        jr.to_avro("outage_window", dict(jr.to_json("outage_window", sample("outage_window")), ended_at="soon"))
    with pytest.raises(JsonRecordError, match="published_at: expected a timestamp"):
        parse_timestamp(True, "published_at")


def test_unknown_field_named(jr: JsonRecords) -> None:
    plain = dict(jr.to_json("entitlement_state", sample("entitlement_state")), colour="red")
    with pytest.raises(JsonRecordError, match=r"^colour: unknown field"):
        jr.to_avro("entitlement_state", plain)


def test_nested_unknown_field_has_path(jr: JsonRecords) -> None:
    plain = jr.to_json("remedy_action", sample("remedy_action"))
    plain["source"]["partiton"] = 1
    with pytest.raises(JsonRecordError, match=r"^source.partiton: unknown field"):
        jr.to_avro("remedy_action", plain)


def test_missing_field_named(jr: JsonRecords) -> None:
    plain = jr.to_json("entitlement_state", sample("entitlement_state"))
    del plain["valid_until"]
    with pytest.raises(JsonRecordError, match=r"^valid_until: missing field"):
        jr.to_avro("entitlement_state", plain)


def test_missing_field_with_default_becomes_null(jr: JsonRecords) -> None:
    plain = jr.to_json("damage_report", sample("damage_report"))
    del plain["contact_email"]
    assert jr.to_avro("damage_report", plain)["contact_email"] is None


def test_missing_nullable_field_without_default_is_missing(jr: JsonRecords) -> None:
    plain = jr.to_json("outage_window", sample("outage_window"))
    del plain["ended_at"]  # nullable but no default: the producer must say null
    with pytest.raises(JsonRecordError, match=r"^ended_at: missing field"):
        jr.to_avro("outage_window", plain)


def test_bad_enum_names_field_and_symbols(jr: JsonRecords) -> None:
    plain = dict(jr.to_json("entitlement_state", sample("entitlement_state")), billing_channel="PAYPAL")
    with pytest.raises(JsonRecordError, match=r"^billing_channel: 'PAYPAL' is not one of WEB, APP_STORE"):
        jr.to_avro("entitlement_state", plain)


def test_float_money_rejected(jr: JsonRecords) -> None:
    plain = dict(jr.to_json("entitlement_state", sample("entitlement_state")), price_krw=4900.0)
    with pytest.raises(JsonRecordError, match=r"^price_krw: money is integer won"):
        jr.to_avro("entitlement_state", plain)
    plain = dict(jr.to_json("damage_report", sample("damage_report")), claimed_loss_krw=420000.5)
    with pytest.raises(JsonRecordError, match=r"^claimed_loss_krw: money is integer won"):
        jr.to_avro("damage_report", plain)


def test_wrong_types_named(jr: JsonRecords) -> None:
    base = jr.to_json("outage_window", sample("outage_window"))
    cases = {"revision": "2", "services": "kakaotalk", "site": 7}
    for field, bad in cases.items():
        with pytest.raises(JsonRecordError, match=rf"^{field}: expected"):
            jr.to_avro("outage_window", dict(base, **{field: bad}))
    with pytest.raises(JsonRecordError, match=r"^services\[1\]: expected a string"):
        jr.to_avro("outage_window", dict(base, services=["melon", None]))
    with pytest.raises(JsonRecordError, match=r"^incident_id: expected a string, got null"):
        jr.to_avro("outage_window", dict(base, incident_id=None))


def test_int_overflow_and_bool_rejected(jr: JsonRecords) -> None:
    base = jr.to_json("entitlement_state", sample("entitlement_state"))
    with pytest.raises(JsonRecordError, match=r"^period_days: .* does not fit in an int"):
        jr.to_avro("entitlement_state", dict(base, period_days=2**31))
    with pytest.raises(JsonRecordError, match=r"^period_days: expected a whole number, got a boolean"):
        jr.to_avro("entitlement_state", dict(base, period_days=True))


def test_bytes_are_base64(jr: JsonRecords) -> None:
    plain = jr.to_json("dead_letter", sample("dead_letter"))
    assert plain["key"] == "dS05" and plain["value"] == "AP9ub3QgYXZybw=="
    with pytest.raises(JsonRecordError, match=r"^value: not valid base64"):
        jr.to_avro("dead_letter", dict(plain, value="%%%"))


def test_not_an_object(jr: JsonRecords) -> None:
    with pytest.raises(JsonRecordError, match="expected a JSON object, got an array"):
        jr.to_avro("outage_window", [1, 2])


def test_input_not_mutated(jr: JsonRecords) -> None:
    plain = jr.to_json("remedy_action", sample("remedy_action"))
    before = copy.deepcopy(plain)
    jr.to_avro("remedy_action", plain)
    assert plain == before


def test_out_of_range_millis_survive_to_json(jr: JsonRecords) -> None:
    # a poison record with an absurd timestamp must still print (as an int, accepted back)
    avro = dict(sample("entitlement_state"), valid_until=10**17)
    plain = jr.to_json("entitlement_state", avro)
    assert plain["valid_until"] == 10**17
    assert jr.to_avro("entitlement_state", plain) == avro
