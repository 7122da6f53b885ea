"""Record conversion, ids and semantic validation."""

from __future__ import annotations

import uuid

import pytest
from tests.factories import DAY, END, START, business, ent, reference, report, src, window

from processors import ids
from processors.errors import InvalidRecord
from processors.model import (DamageReport, EntitlementState, IncidentStatus, NoticeKind,
                              OutageWindow, RemedyAction, ReviewCase, UserNotice, from_dict, to_dict)
from processors.reports import triage_report
from processors.entitlements import decide_entitlement
from processors.validate import validate_entitlement, validate_report, validate_window
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
