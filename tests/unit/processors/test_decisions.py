"""Review decisions close the loop (#16): a decision pays once, a changed one tops up or does
nothing, a repeated one publishes nothing, one for an unknown case is refused."""
from __future__ import annotations

import pytest

from processors import ids
from processors.batch import evaluate
from processors.decisions import decide_review, fingerprint, review_rule_id
from processors.errors import InvalidRecord, UnknownCase
from processors.model import Action, NoticeKind, Outcome, ReviewDecision, Verdict
from processors.reports import triage_report
from processors.validate import validate_decision
from processors.windows import IncidentHistory
from tests.factories import DAY, END, INCIDENT, business, reference, src, window

POLICY = reference()
HISTORY = {INCIDENT: IncidentHistory.of([window()])}
CASE = ids.case_id(INCIDENT, "U-1", "123-45-67890")

def decision(**kw) -> ReviewDecision:
    base = dict(case_id=CASE, review_id=None, reporter_id="U-1", verdict=Verdict.APPROVE, amount_krw=300_000,
                reviewer_id="rev-1", note="receipts checked", decided_at=END + 20 * DAY)
    base.update(kw)
    return ReviewDecision(**base)

def large_case(locale="en", tier_first=False):
    case = None
    if tier_first:
        _, case = triage_report(POLICY, HISTORY, business(report_id="R-0", claimed_loss_krw=100_000,
                                                          locale=locale), src(0), case, [])
    d, case = triage_report(POLICY, HISTORY, business(claimed_loss_krw=2_000_000, locale=locale,
                                                      submitted_at=END + 3 * DAY), src(1), case, [])
    assert d.outcome is Outcome.IN_REVIEW
    return case

def test_an_approval_pays_once_with_lineage_to_the_decision():
    d, case = decide_review(POLICY, large_case(), decision(), src(7, "remedy.review-decisions.v1"))
    (p,) = d.remedies
    assert (p.action, p.amount_krw, p.user_id, p.subject_id) == (Action.PAYOUT, 300_000, "U-1", CASE)
    assert p.rule_id == review_rule_id(POLICY) == "business-payout-review"
    assert p.remedy_id == ids.remedy_id(INCIDENT, "business-payout-review", CASE, 0)
    assert p.source == src(7, "remedy.review-decisions.v1") and p.supersedes is None
    assert p.service == "kakaotalk" and p.decided_at == decision().decided_at
    (n,) = d.notices
    assert n.kind is NoticeKind.REVIEW_DECIDED and n.remedy_ids == (p.remedy_id,)
    assert "300,000 won" in n.message and "receipts" not in n.message
    assert case.review_paid_krw == 300_000 and case.review_payout_ids == (p.remedy_id,)
    again, same = decide_review(POLICY, case, decision(), src(8))      # the same decision, read again
    assert again.outcome is Outcome.DUPLICATE and not again.remedies and not again.notices and same == case

def test_an_approval_adds_to_the_tier_payout_it_supersedes():
    case = large_case(tier_first=True)
    assert case.paid_krw == 30_000
    d, _ = decide_review(POLICY, case, decision(amount_krw=470_000), src())
    (p,) = d.remedies
    assert p.supersedes == case.payout_ids[0] and p.amount_krw == 470_000
    assert "bringing your compensation to 500,000 won" in d.notices[0].message

def test_a_changed_decision_tops_up_or_does_nothing():
    _, case = decide_review(POLICY, large_case(locale="ko"), decision(), src(1))
    up, case = decide_review(POLICY, case, decision(amount_krw=450_000, decided_at=END + 21 * DAY), src(2))
    (top,) = up.remedies
    assert top.amount_krw == 150_000 and top.supersedes == case.review_payout_ids[0]
    assert top.remedy_id == ids.remedy_id(INCIDENT, "business-payout-review", CASE, 1)
    assert "추가로 지급해, 지급한 보상금은 모두 450,000원" in up.notices[0].message
    down, case = decide_review(POLICY, case, decision(amount_krw=100_000, decided_at=END + 22 * DAY), src(3))
    deny, case = decide_review(POLICY, case, decision(verdict=Verdict.DENY, amount_krw=None,
                                                      decided_at=END + 23 * DAY), src(4))
    for d in (down, deny):
        assert d.outcome is Outcome.NO_CHANGE and not d.remedies and len(d.notices) == 1
    assert case.review_paid_krw == 450_000
    assert len({n.notice_id for n in (up.notices[0], down.notices[0], deny.notices[0])}) == 3

def test_a_denial_pays_nothing_and_says_so():
    d, case = decide_review(POLICY, large_case(), decision(verdict=Verdict.DENY, amount_krw=None), src())
    assert d.outcome is Outcome.REJECTED and not d.remedies
    assert "No additional compensation" in d.notices[0].message

@pytest.mark.parametrize("case, change, why", [
    (None, {}, "unknown case"),
    ("tier-only", {}, "never sent to review"),
    ("large", {"reporter_id": "U-2"}, "unknown case"),
    ("large", {"review_id": ids.review_id(CASE, "FREE_SERVICE")}, "not a review of case"),
])
def test_a_decision_for_an_unknown_case_is_refused(case, change, why):
    state = {None: None, "large": large_case()}.get(case)
    if case == "tier-only":
        _, state = triage_report(POLICY, HISTORY, business(claimed_loss_krw=100_000), src(), None, [])
    with pytest.raises(UnknownCase, match=why):
        decide_review(POLICY, state, decision(**change), src())

def test_a_decision_naming_the_right_review_applies():
    review = ids.review_id(CASE, "LARGE_BUSINESS_LOSS")
    d, _ = decide_review(POLICY, large_case(), decision(review_id=review), src())
    assert d.outcome is Outcome.PAID

@pytest.mark.parametrize("change, why", [
    ({"amount_krw": None}, "needs amount_krw"), ({"amount_krw": 0}, "needs amount_krw"),
    ({"amount_krw": -5}, "negative"), ({"verdict": Verdict.DENY}, "no amount_krw"),
    ({"case_id": "bad id"}, "case_id"), ({"note": "x" * 2_001}, "note"), ({"decided_at": 5}, "decided_at"),
])
def test_malformed_decisions_are_invalid(change, why):
    with pytest.raises(InvalidRecord, match=why):
        validate_decision(decision(**change))

def test_fingerprint_ignores_the_note_but_not_the_amount():
    assert fingerprint(decision()) == fingerprint(decision(note="other words"))
    assert fingerprint(decision()) != fingerprint(decision(amount_krw=300_001))

def test_the_evaluator_applies_decisions_after_the_reports():
    reports = [(business(claimed_loss_krw=2_000_000), src(1, "reports"))]
    decisions = [(decision(), src(0, "decisions")), (decision(), src(1, "decisions")),
                 (decision(amount_krw=400_000, decided_at=END + 30 * DAY), src(2, "decisions")),
                 (decision(case_id=ids.case_id(INCIDENT, "U-1", "999")), src(3, "decisions"))]
    out = evaluate(POLICY, [(window(), src(0, "w"))], [], reports, decisions=decisions)
    paid = [r for r in out.remedies if r.rule_id == "business-payout-review"]
    assert sorted(r.amount_krw for r in paid) == [100_000, 300_000]
    assert [i.source.offset for i in out.invalid] == [3] and "unknown case" in out.invalid[0].reason
    assert out.counts["duplicate"] == 1
    decided = [n for n in out.notices if n.kind is NoticeKind.REVIEW_DECIDED]
    assert len(decided) == 2
