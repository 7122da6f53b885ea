"""Reviewers' decisions on cases under review (#16): APPROVE pays, once; DENY closes.

A decision reaches the code that holds its case: it is keyed by the reporter, like the reports
and the reporter's cases, so the worker owning the reporter's partition applies it with the
case as that worker's last committed batch left it (streams/worker/reports.py), and the batch
evaluator folds it after the reports that opened the case (processors.batch).

- APPROVE `amount_krw` is the additional compensation the review grants the case, on top of
  the tier payouts. The first approval pays it as a PAYOUT (rule `<payout rule>-review`,
  subject the case) whose `supersedes` names the case's first tier payout, when it had one:
  the payout it adds to. Its `source` is the decision record: lineage to the decision.
- A later decision for the same case changes the approved amount: a higher one pays the
  difference (a top-up superseding the first review payout), a lower one or a DENY pays
  nothing and takes nothing back. Nothing pays twice: payout ids are UUIDv5 of (incident,
  rule, case, sequence) and the ledger drops ids already issued; a decision seen before (the
  same fields, by fingerprint) is a DUPLICATE and publishes nothing.
- A decision for a case the reporter does not have, or that was never sent to review, or for
  a review of another case, raises UnknownCase: the caller dead-letters it with the reason.
- Each applied decision tells the reporter, in their language, in one notice (REVIEW_DECIDED)
  that lists the payout it made, with the case's new total.
The note is the reviewer's free text: it is never copied anywhere.
"""

from __future__ import annotations

import dataclasses

from processors import ids
from processors.errors import UnknownCase
from processors.model import (
    Action,
    Decision,
    NoticeKind,
    Outcome,
    RemedyAction,
    ReviewDecision,
    Source,
    SubjectKind,
    Verdict,
)
from processors.notices import locale_for, report_notice
from processors.policy import Policy
from processors.reports import CaseState

DUPLICATE = Decision(outcome=Outcome.DUPLICATE)


def review_rule_id(policy: Policy) -> str:
    """The rule id of payouts decided by review (next to the tier payouts' rule)."""
    return f"{policy.reports.payout_rule_id}-review"


def fingerprint(d: ReviewDecision) -> str:
    """The same decision, however often it is read, has the same fingerprint (the note aside)."""
    return ids.uuid5_str("|".join(["decision", d.case_id, d.review_id or "", d.verdict.name,
                                   str(d.amount_krw or 0), d.reviewer_id, str(d.decided_at)]))


def check_case(case: CaseState | None, d: ReviewDecision) -> CaseState:
    """The case `d` decides, or UnknownCase saying why there is none."""
    if case is None or case.case_id != d.case_id or case.reporter_id != d.reporter_id:
        raise UnknownCase(f"review decision for unknown case {d.case_id}: reporter {d.reporter_id} has no "
                          "such case (check the case id and that the decision is keyed by its reporter)")
    if not case.reviewed:
        raise UnknownCase(f"review decision for case {d.case_id}, which was never sent to review")
    if d.review_id is not None and d.review_id not in {ids.review_id(case.case_id, r) for r in case.reviewed}:
        raise UnknownCase(f"review decision names review {d.review_id}, which is not a review of case {d.case_id}")
    return case


def decide_review(policy: Policy, case: CaseState | None, d: ReviewDecision,
                  source: Source) -> tuple[Decision, CaseState]:
    """What decision `d` pays on its case; returns the decision and the case to store."""
    state = check_case(case, d)
    mark = fingerprint(d)
    if mark in state.decisions:
        return DUPLICATE, state
    n = len(state.decisions)
    state = dataclasses.replace(state, decisions=state.decisions + (mark,))
    approved = (d.amount_krw or 0) if d.verdict is Verdict.APPROVE else 0
    remedies: tuple[RemedyAction, ...] = ()
    if approved > state.review_paid_krw:
        seq = len(state.review_payout_ids)
        payout = RemedyAction(
            remedy_id=ids.remedy_id(state.incident_id, review_rule_id(policy), state.case_id, seq),
            incident_id=state.incident_id,
            rule_id=review_rule_id(policy),
            policy_version=policy.version,
            action=Action.PAYOUT,
            user_id=state.reporter_id,
            subject_kind=SubjectKind.REPORT,
            subject_id=state.case_id,
            service=state.service,
            extend_hours=None,
            amount_krw=approved - state.review_paid_krw,
            supersedes=state.review_payout_ids[0] if seq else (state.payout_ids[0] if state.payout_ids else None),
            decided_at=d.decided_at,
            source=source,
        )
        remedies = (payout,)
        why, outcome = ("increased" if seq else "approved"), Outcome.PAID
        state = dataclasses.replace(state, review_paid_krw=approved,
                                    review_payout_ids=state.review_payout_ids + (payout.remedy_id,))
    elif d.verdict is Verdict.DENY and not state.review_paid_krw:
        why, outcome = "denied", Outcome.REJECTED
    else:
        why, outcome = "unchanged", Outcome.NO_CHANGE
    total = state.paid_krw + state.review_paid_krw
    notice = report_notice(
        policy=policy,
        locale=locale_for(policy, state.locale),
        report_id=state.report_ids[-1] if state.report_ids else state.case_id,
        user_id=state.reporter_id,
        incident_id=state.incident_id,
        kind=NoticeKind.REVIEW_DECIDED,
        why=why,
        remedy_ids=tuple(r.remedy_id for r in remedies),
        decided_at=d.decided_at,
        source=source,
        given=[(r, total) for r in remedies],
        section="review",
        nid=ids.decision_notice_id(state.case_id, n),
    )
    return Decision(remedies=remedies, notices=(notice,), outcome=outcome), state
