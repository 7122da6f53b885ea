"""Report triage: tiers, case amendments, intake, coverage and where personal data goes."""

from __future__ import annotations

import pytest
from tests.factories import (BODY, DAY, EMAIL, END, HOUR, INCIDENT, PHONE, START, business, ent,
                       reference, report, src, window)

from processors import ids
from processors.entitlements import decide_entitlement
from processors.model import (Action, IncidentStatus, NoticeKind, ReportCategory, ReviewReason,
                              SubjectKind, to_dict)
from processors.reports import locate_case, triage_report
from processors.windows import IncidentHistory

POLICY = reference()
INCIDENTS = {INCIDENT: IncidentHistory.of([window()])}
CASE = ids.case_id(INCIDENT, "U-1", "123-45-67890")


def triage(r, case=None, covered=(), incidents=INCIDENTS):
    return triage_report(POLICY, incidents, r, src(9), case, list(covered))


@pytest.mark.parametrize("loss, payout", [(0, 30_000), (299_999, 30_000), (300_000, 50_000),
                                          (500_000, 50_000)])
def test_business_tiers_inclusive_bounds(loss, payout):
    d, case = triage(business(claimed_loss_krw=loss))
    (p,) = d.remedies
    assert (p.action, p.amount_krw, p.supersedes) == (Action.PAYOUT, payout, None)
    assert (p.subject_kind, p.subject_id, p.user_id) == (SubjectKind.REPORT, CASE, "U-1")
    assert p.remedy_id == ids.remedy_id(INCIDENT, "business-payout", CASE, 0)
    assert case.paid_krw == payout and case.payout_ids == (p.remedy_id,)
    (notice,) = d.notices   # one digest: the decision and the payout it made
    assert notice.kind is NoticeKind.REPORT_COVERED
    assert notice.notice_id == ids.notice_id("report", "R-1")
    assert notice.remedy_ids == (p.remedy_id,)
    assert f"A payment of {payout:,} won" in notice.message and p.remedy_id in notice.message
    assert p.decided_at == max(business().submitted_at, window().published_at)


def test_business_loss_above_500k_goes_to_review():
    d, case = triage(business(claimed_loss_krw=500_001))
    assert not d.remedies
    (v,) = d.reviews
    assert v.reason is ReviewReason.LARGE_BUSINESS_LOSS
    assert v.review_id == ids.review_id(CASE, "LARGE_BUSINESS_LOSS")
    assert d.notices[0].kind is NoticeKind.REPORT_IN_REVIEW
    assert case.reviewed == {"LARGE_BUSINESS_LOSS"}


def test_business_without_stated_loss_goes_to_review():
    d, _ = triage(business(claimed_loss_krw=None))
    assert [v.reason for v in d.reviews] == [ReviewReason.BUSINESS_LOSS_UNSTATED]


def test_case_amendments():
    d1, case = triage(business(report_id="R-1", claimed_loss_krw=100_000))
    first = d1.remedies[0]
    # A higher tier tops up by the difference and supersedes the first payout.
    d2, case = triage(business(report_id="R-2", claimed_loss_krw=400_000), case)
    (top,) = d2.remedies
    assert (top.amount_krw, top.supersedes) == (20_000, first.remedy_id)
    assert top.remedy_id == ids.remedy_id(INCIDENT, "business-payout", CASE, 1)
    # A lower (or equal) tier changes nothing.
    d3, case = triage(business(report_id="R-3", claimed_loss_krw=50_000), case)
    assert not d3.remedies and [n.kind for n in d3.notices] == [NoticeKind.REPORT_NO_CHANGE]
    assert case.paid_krw == 50_000
    # Crossing 500,000 opens a review, once.
    d4, case = triage(business(report_id="R-4", claimed_loss_krw=900_000), case)
    (v,) = d4.reviews
    assert v.reason is ReviewReason.LARGE_BUSINESS_LOSS and v.report_ids == ("R-1", "R-2", "R-3", "R-4")
    d5, case = triage(business(report_id="R-5", claimed_loss_krw=2_000_000), case)
    assert not d5.reviews and d5.notices[0].kind is NoticeKind.REPORT_IN_REVIEW
    assert case.report_ids == ("R-1", "R-2", "R-3", "R-4", "R-5")
    # Replaying an already-filed report decides nothing new.
    again, same = triage(business(report_id="R-2", claimed_loss_krw=400_000), case)
    assert again.outcome == "duplicate" and same == case


def test_case_of_another_reporter_is_refused():
    _, case = triage(business())
    with pytest.raises(ValueError):
        triage(business(reporter_id="U-2"), case)


def test_individual_free_service_and_other_go_to_review():
    d, _ = triage(report(category=ReportCategory.FREE_SERVICE))
    assert [v.reason for v in d.reviews] == [ReviewReason.FREE_SERVICE]
    for category in (ReportCategory.OTHER, ReportCategory.BUSINESS_LOSS):
        d, _ = triage(report(category=category))
        assert [v.reason for v in d.reviews] == [ReviewReason.OTHER]


def test_paid_service_covered_names_the_remedies_on_that_service():
    issued = decide_entitlement(POLICY, INCIDENTS[INCIDENT], ent(), src(1)).remedies
    other = decide_entitlement(POLICY, INCIDENTS[INCIDENT],
                               ent(entitlement_id="E-9", service="melon"), src(2)).remedies
    r = report(category=ReportCategory.PAID_SERVICE, service="emoticon-plus")
    d, _ = triage(r, covered=issued + other)
    (n,) = d.notices
    assert n.kind is NoticeKind.REPORT_COVERED and n.remedy_ids == (issued[0].remedy_id,)
    assert not d.reviews and d.outcome == "covered"


def test_a_business_payout_does_not_cover_the_same_users_paid_service():
    """The ledger indexes every remedy of a user, payouts included; only entitlement remedies
    cover a paid service (as in the batch evaluator, which hands triage only those)."""
    payout = triage(business(service="emoticon-plus"))[0].remedies
    r = report(report_id="R-2", category=ReportCategory.PAID_SERVICE, service="emoticon-plus")
    d, _ = triage(r, covered=payout)
    assert [v.reason for v in d.reviews] == [ReviewReason.PAID_SERVICE_UNCOVERED]


def test_paid_service_uncovered_goes_to_review():
    melon_only = decide_entitlement(POLICY, INCIDENTS[INCIDENT], ent(service="melon"), src()).remedies
    r = report(category=ReportCategory.PAID_SERVICE, service="emoticon-plus")
    d, _ = triage(r, covered=melon_only)
    assert [v.reason for v in d.reviews] == [ReviewReason.PAID_SERVICE_UNCOVERED]


def test_intake_individual_14_days_business_28():
    deadline = END + 14 * DAY
    assert triage(report(submitted_at=deadline - 1))[0].outcome == "in-review"
    # Outside intake: rejected with a notice, but not for good (issue #11): a revision that
    # lengthens the window may still admit it, so it stays PENDING for re-triage.
    d, case = triage(report(submitted_at=deadline))
    assert d.outcome == "pending" and case is None and not d.remedies
    (n,) = d.notices
    assert n.kind is NoticeKind.REPORT_REJECTED and "intake period" in n.message
    assert triage(business(submitted_at=deadline + 14 * DAY - 1))[0].outcome == "paid"
    d, _ = triage(business(submitted_at=deadline + 14 * DAY))
    assert d.outcome == "pending" and [n.kind for n in d.notices] == [NoticeKind.REPORT_REJECTED]
    assert triage(report(submitted_at=START - 1))[0].outcome == "rejected"


def test_open_incident_decides_nothing_yet():
    """While OPEN the intake end is unknown (issue #11): a receipt, no payout, no rejection."""
    incidents = {INCIDENT: IncidentHistory.of([window(status=IncidentStatus.OPEN)])}
    for r in (report(submitted_at=END + 400 * DAY), business(submitted_at=END + 400 * DAY)):
        d, case = triage(r, incidents=incidents)
        assert d.outcome == "pending" and case is None and not d.remedies and not d.reviews
        assert [n.kind for n in d.notices] == [NoticeKind.REPORT_RECEIVED]


def test_retracted_incident_rejects():
    incidents = {INCIDENT: IncidentHistory.of([window(), window(revision=2, status=IncidentStatus.RETRACTED)])}
    d, _ = triage(business(), incidents=incidents)
    assert d.outcome == "rejected" and "false alarm" in d.notices[0].message and not d.remedies


def test_matching_by_service_and_time_else_pending():
    r = report(incident_id=None, occurred_at=START + HOUR)
    assert locate_case(INCIDENTS, r) == ids.case_id(INCIDENT, "U-1", None)
    assert triage(r)[0].outcome == "in-review"
    assert triage(report(incident_id=None, occurred_at=END))[0] .outcome == "pending"
    assert triage(report(incident_id=None, service="kakao-t"))[0].outcome == "pending"
    assert triage(report(incident_id="INC-UNKNOWN"))[0].outcome == "pending"
    # No occurred_at: submitted_at is used.
    r = report(incident_id=None, occurred_at=None, submitted_at=START + HOUR)
    assert triage(r)[0].outcome == "in-review"


def test_personal_data_only_in_review_cases():
    outputs = []
    case = None
    for i, r in enumerate([business(claimed_loss_krw=100_000), business(claimed_loss_krw=900_000),
                           business(claimed_loss_krw=1), report(report_id="X")]):
        r = r if r.report_id == "X" else business(report_id=f"B-{i}", claimed_loss_krw=r.claimed_loss_krw)
        d, case = triage(r, case if r.report_id != "X" else None)
        outputs.append(d)
    reviews = [v for d in outputs for v in d.reviews]
    assert reviews and all(v.body == BODY for v in reviews)
    for d in outputs:
        for record in (*d.remedies, *d.notices):
            text = repr(to_dict(record))
            for secret in (BODY, EMAIL, PHONE, "secret-title-7731"):
                assert secret not in text
