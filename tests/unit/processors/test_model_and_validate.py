"""Record conversion, ids and semantic validation."""

from __future__ import annotations

import re
import uuid

import pytest
from tests.factories import DAY, END, START, business, ent, reference, report, src, window

from processors import ids
from processors.errors import InvalidRecord
from processors.model import (DamageReport, EntitlementState, IncidentStatus, NoticeKind,
                              OutageWindow, RemedyAction, ReviewCase, UserNotice, from_dict, to_dict)
from processors.reports import triage_report
from processors.entitlements import decide_entitlement
from processors.validate import validate_entitlement, validate_key, validate_report, validate_window
from processors.windows import IncidentHistory

POLICY = reference()


def test_enum_values_equal_names():
    assert NoticeKind.REPORT_COVERED.value == "REPORT_COVERED"


def test_round_trip_every_record_type():
    history = IncidentHistory.of([window()])
    remedies = decide_entitlement(POLICY, history, ent(), src(3)).remedies
    d, _ = triage_report(POLICY, {history.incident_id: history}, business(claimed_loss_krw=None),
                         src(4), None, [])
    records = [window(), ent(), report(), *remedies, *d.reviews, *d.notices]
    types = {type(r) for r in records}
    assert types == {OutageWindow, EntitlementState, DamageReport, RemedyAction, ReviewCase, UserNotice}
    for r in records:
        plain = to_dict(r)
        assert all(not isinstance(v, tuple) for v in plain.values())
        assert from_dict(type(r), plain) == r
    assert to_dict(window())["status"] == "CLOSED"
    assert to_dict(window())["services"][0] == "kakaotalk"
    assert to_dict(remedies[0])["source"] == {"topic": "test.topic", "partition": 0, "offset": 3}


def test_from_dict_rejects_unknown_enum_and_fields():
    plain = to_dict(window())
    with pytest.raises(InvalidRecord):
        from_dict(OutageWindow, {**plain, "status": "MAYBE"})
    with pytest.raises(InvalidRecord):
        from_dict(OutageWindow, {**plain, "extra": 1})


def test_from_dict_errors_name_the_problem():
    plain = to_dict(window())
    del plain["site"]
    with pytest.raises(InvalidRecord, match=r"^OutageWindow: missing fields \['site'\]$"):
        from_dict(OutageWindow, plain)
    with pytest.raises(InvalidRecord, match=r"^OutageWindow: unknown fields \['zz'\]$"):
        from_dict(OutageWindow, {**plain, "zz": 1})
    with pytest.raises(InvalidRecord, match=r"^OutageWindow: unknown enum symbol 'MAYBE'$"):
        from_dict(OutageWindow, {**plain, "site": "s", "status": "MAYBE"})
    with pytest.raises(InvalidRecord, match=r"^RemedyAction: unknown enum symbol 'NOPE'$"):
        r = to_dict(decide_entitlement(POLICY, IncidentHistory.of([window()]), ent(), src(1)).remedies[0])
        from_dict(RemedyAction, {**r, "subject_kind": "NOPE"})


def test_ids_are_deterministic_and_distinct():
    assert ids.remedy_id("I", "r", "s", 0) == ids.remedy_id("I", "r", "s", 0)
    assert ids.remedy_id("I", "r", "s", 0) != ids.remedy_id("I", "r", "s", 1)
    assert ids.case_id("I", "u", None) != ids.case_id("I", "u", "b")


def test_fast_uuid5_equals_stdlib():
    # Empty, separators, non-ASCII (accents, Hangul, astral emoji), NUL, long text, then
    # names shaped like the ones ids are built from.
    names = ["", "|", "a", "é", "한국어 보상", "\u0000", "\U0001F600" * 40, "x" * 1000,
             "remedy|66cbde23-9855-4b33-98e7-5acbddd6a126",
             *(f"INC-{i}|rule|ENT-{i * 7919}|{i % 5}" for i in range(2000))]
    for name in names:
        assert ids.uuid5_str(name) == str(uuid.uuid5(ids.NAMESPACE, name)), name


def test_ids_join_parts_as_before():
    # The id of (parts) is uuid5 of the parts joined by "|", None as "": the ledger holds such ids.
    assert ids.case_id("I", "u", None) == str(uuid.uuid5(ids.NAMESPACE, "I|u|"))
    assert ids.remedy_id("I", "r", "s", 3) == str(uuid.uuid5(ids.NAMESPACE, "I|r|s|3"))
    assert ids.notice_id("remedy", "한") == str(uuid.uuid5(ids.NAMESPACE, "remedy|한"))


@pytest.mark.parametrize("w, why", [
    (window(services=("netflix",)), "unknown service"),
    (window(ended_at=START - 1), "before"),
    (window(status=IncidentStatus.OPEN, ended_at=END), "OPEN"),
    (window(ended_at=None), "CLOSED"),
    (window(revision=-1), "revision"),
    (window(incident_id=""), "incident_id"),
    (window(started_at=100), "outside"),
    (window(published_at=4_102_444_800_000), "outside"),
])
def test_invalid_windows(w, why):
    with pytest.raises(InvalidRecord, match=why):
        validate_window(w, POLICY)


def test_valid_windows_pass():
    validate_window(window(), POLICY)
    validate_window(window(status=IncidentStatus.RETRACTED, ended_at=None), POLICY)
    validate_window(window(status=IncidentStatus.RETRACTED), POLICY)
    validate_window(window(services=("netflix",)))  # no policy: services unchecked


@pytest.mark.parametrize("e, why", [
    (ent(service="netflix"), "unknown service"),
    (ent(valid_until=START - 20 * DAY), "valid_until"),
    (ent(price_krw=-1), "negative"),
    (ent(price_krw=100_000_001), "absurd"),
    (ent(period_days=0), "period_days"),
    (ent(user_id=" "), "user_id"),
])
def test_invalid_entitlements(e, why):
    with pytest.raises(InvalidRecord, match=why):
        validate_entitlement(e, POLICY)


@pytest.mark.parametrize("r, why", [
    (report(service="netflix"), "unknown service"),
    (business(claimed_loss_krw=-5), "negative"),
    (business(claimed_loss_krw=10**13 + 1), "absurd"),
    (business(business_id=None), "business_id"),
    (report(report_id=""), "report_id"),
    (report(occurred_at=0), "outside"),
])
def test_invalid_reports(r, why):
    with pytest.raises(InvalidRecord, match=why) as info:
        validate_report(r, POLICY)
    assert info.value.reason and r.body not in info.value.reason


def test_valid_records_pass():
    validate_entitlement(ent(), POLICY)
    validate_report(report(), POLICY)
    validate_report(business(claimed_loss_krw=10**13), POLICY)


# ------------------------------------------------------------------ identifiers (issue #11)

MANGLED = [
    ("INC-H\x0fLD-20221015", "U+000F"),        # a bit flip into a control character
    ("INC-20221015-PANGY\x00", "U+0000"),
    ("INC-20221015-PANGYO\n", "U+000A"),
    ("INC-2022101\u00b5-PANGYO", "U+00B5"),     # printable but not ASCII
    ("INC 20221015", "does not match"),
    ("I" * 65, "65 characters"),
]


@pytest.mark.parametrize("value, why", MANGLED + [("INC-20221015-pangyo", "does not match"),
                                                  ("-INC-1", "does not match")])
def test_mangled_incident_ids_are_invalid(value, why):
    with pytest.raises(InvalidRecord, match=f"incident_id is not a valid identifier: .*{re.escape(why)}"):
        validate_window(window(incident_id=value), POLICY)
    with pytest.raises(InvalidRecord, match=f"incident_id is not a valid identifier: .*{re.escape(why)}"):
        validate_report(report(incident_id=value), POLICY)


@pytest.mark.parametrize("field", ["entitlement_id", "user_id"])
@pytest.mark.parametrize("value, why", [("E-1\x1b[31m", "U+001B"), ("E\x7f1", "U+007F"), ("u\u200b1", "U+200B"),
                                        ("한국", "U+D55C"), ("e" * 129, "129 characters"), ("e/1", "does not match")])
def test_mangled_entitlement_ids_are_invalid(field, value, why):
    with pytest.raises(InvalidRecord, match=f"{field} is not a valid identifier: .*{re.escape(why)}"):
        validate_entitlement(ent(**{field: value}), POLICY)


@pytest.mark.parametrize("field", ["report_id", "reporter_id", "business_id"])
def test_mangled_report_ids_are_invalid(field):
    with pytest.raises(InvalidRecord, match=f"{field} is not a valid identifier: .*U\\+0001") as info:
        validate_report(business(**{field: "B-\x01-1"}), POLICY)
    assert "\x01" not in info.value.reason    # the reason names the character, never echoes it


@pytest.mark.parametrize("service, why", [("melon\x00", "U+0000"), ("Melon", "does not match"),
                                          ("m" * 33, "33 characters"), ("melom", "unknown service")])
def test_mangled_service_codes_are_invalid(service, why):
    with pytest.raises(InvalidRecord, match=re.escape(why)):
        validate_window(window(services=("kakaotalk", service)), POLICY)
    with pytest.raises(InvalidRecord, match=re.escape(why)):
        validate_entitlement(ent(service=service), POLICY)


def test_a_window_naming_a_service_twice_is_invalid():
    with pytest.raises(InvalidRecord, match="more than once"):
        validate_window(window(services=("melon",) * 50_000), POLICY)


@pytest.mark.parametrize("field, size", [("title", 1_001), ("body", 50_001), ("contact_email", 255),
                                         ("contact_phone", 33)])
def test_oversized_free_text_is_invalid(field, size):
    with pytest.raises(InvalidRecord, match=f"{field} is {size:,} characters") as info:
        validate_report(report(**{field: "x" * size}), POLICY)
    assert "xxxx" not in info.value.reason
    with pytest.raises(InvalidRecord, match="site is 201"):
        validate_window(window(site="s" * 201), POLICY)


@pytest.mark.parametrize("incident_id", ["INC-20221015-PANGYO", "INC-1", "INC-BENCH-PANGYO", "OUTAGE_2024.07", "I"])
def test_identifiers_the_project_uses_are_valid(incident_id):
    validate_window(window(incident_id=incident_id), POLICY)
    for eid, uid in [("ent-0000001", "u-0000001"), ("e1", "u1"), ("ENT-1", "U-1"), ("E-g1", "biz-amend"),
                     ("acct:42", "someone+tag@example.com"), ("e" * 128, "u" * 128)]:
        validate_entitlement(ent(entitlement_id=eid, user_id=uid), POLICY)
    for bid in ("123-45-67890", "BRN-biz1", "000-00-00000"):
        validate_report(business(business_id=bid, report_id="rpt-0000001", reporter_id="u-5000001"), POLICY)
    validate_report(report(body="본문" * 25_000, title="제목" * 500), POLICY)


def test_a_record_must_be_keyed_by_its_id():
    validate_key(window(), b"INC-20221015-PANGYO")
    validate_key(report(reporter_id="U-7"), b"U-7")
    validate_key(ent(entitlement_id="ent-1"), b"ent-1")
    for record, key, name in [(window(incident_id="INC-20221015-PANGYN"), b"INC-20221015-PANGYO", "incident_id"),
                              (ent(entitlement_id="ent-3"), b"ent-1", "entitlement_id"),
                              (report(reporter_id="U-6"), b"U-7", "reporter_id")]:
        with pytest.raises(InvalidRecord, match=f"^the record's key is not its {name}$"):
            validate_key(record, key)
    with pytest.raises(InvalidRecord, match="no key"):
        validate_key(window(), None)
