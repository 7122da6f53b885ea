"""Review cases and payouts seen per case: what is still awaiting review, what was paid per case.

Pure functions over decoded records, shared by `makegood status` and `makegood report`.

A review case is *open* until a reviewer's decision answers it:
- one that pays leaves a remedy on its case (subject_id == case_id) whose source is a record of
  remedy.review-decisions.v1 (a decision's remedy carries its lineage);
- every decision, a DENY included, sends its reporter one REVIEW_DECIDED notice whose id is
  made of the case id and the decision's number (processors.ids.decision_notice_id), so a case
  is answered once the notice of its first decision is out.
Tier payouts on the same case, before or after, do not close it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from processors.ids import decision_notice_id
from processors.model import Action, NoticeKind, RemedyAction, SubjectKind, UserNotice

REVIEW_DECISIONS = "remedy.review-decisions.v1"   # the reviewers' input topic (issue #16)


class ReviewLike(Protocol):
    review_id: str
    case_id: str
    decided_at: int


def is_decision(r: RemedyAction) -> bool:
    """A remedy a reviewer's decision issued (its source is a review-decisions record)."""
    return r.subject_kind is SubjectKind.REPORT and r.source.topic.endswith(REVIEW_DECISIONS)


def decided_cases(remedies: Iterable[RemedyAction]) -> set[str]:
    return {r.subject_id for r in remedies if is_decision(r)}


def answered_cases(reviews: Iterable[ReviewLike], notices: Iterable[UserNotice]) -> set[str]:
    """Cases a reviewer's decision answered, paying or not (see the module doc)."""
    told = {n.notice_id for n in notices if n.kind is NoticeKind.REVIEW_DECIDED}
    return {v.case_id for v in reviews if decision_notice_id(v.case_id, 0) in told}


def open_reviews(reviews: Iterable[ReviewLike], remedies: Iterable[RemedyAction],
                 notices: Iterable[UserNotice] = ()) -> list:
    """The reviews not yet decided (see the module doc), one per review id, oldest first."""
    distinct = {v.review_id: v for v in reviews}
    decided = decided_cases(remedies) | answered_cases(distinct.values(), notices)
    return sorted((v for v in distinct.values() if v.case_id not in decided),
                  key=lambda v: (v.decided_at, v.review_id))


@dataclass(frozen=True)
class CaseMoney:
    """Won per case of one action: a 30,000 payout topped up by 20,000 is one case of 50,000."""
    action: str
    cases: int
    remedies: int
    won: int

    @property
    def average(self) -> int | None:
        return None if not self.cases else round(self.won / self.cases)


def money_per_case(remedies: Sequence[RemedyAction]) -> list[CaseMoney]:
    """CREDIT and PAYOUT grouped by the subject they pay for (a report case, an entitlement);
    reversals subtract from the subject they take back. Distinct remedy ids expected."""
    by_id = {r.remedy_id: r for r in remedies}
    acc: dict[str, dict[tuple[str, str], int]] = {Action.CREDIT.value: {}, Action.PAYOUT.value: {}}
    counts = {Action.CREDIT.value: 0, Action.PAYOUT.value: 0}
    for r in remedies:
        target = by_id.get(r.supersedes) if r.action is Action.REVERSAL and r.supersedes else r
        if target is None or target.action.value not in acc or not r.amount_krw:
            continue
        sign = -1 if r.action is Action.REVERSAL else 1
        subject = (target.subject_kind.value, target.subject_id)
        acc[target.action.value][subject] = acc[target.action.value].get(subject, 0) + sign * r.amount_krw
        counts[target.action.value] += r.action is not Action.REVERSAL
    return [CaseMoney(a, sum(1 for v in subj.values() if v > 0), counts[a], sum(subj.values()))
            for a, subj in acc.items() if counts[a]]
