"""Review cases and payouts seen per case: what is still awaiting review, what was paid per case.

Pure functions over decoded records, shared by `makegood status` and `makegood report`.

A review case is *open* until a remedy is issued on its case (subject_id == case_id) at or after
the moment the case went to review: a reviewer's decision pays on the case it decides, and a
payout issued before the review (a lower tier) does not close it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from processors.model import Action, RemedyAction, SubjectKind


class ReviewLike(Protocol):
    review_id: str
    case_id: str
    decided_at: int


def open_reviews(reviews: Iterable[ReviewLike], remedies: Iterable[RemedyAction]) -> list:
    """The reviews not yet decided (see the module doc), one per review id, oldest first."""
    last_paid: dict[str, int] = {}
    for r in remedies:
        if r.subject_kind is SubjectKind.REPORT and r.action is not Action.REVERSAL:
            last_paid[r.subject_id] = max(last_paid.get(r.subject_id, r.decided_at), r.decided_at)
    distinct = {v.review_id: v for v in reviews}
    return sorted((v for v in distinct.values() if last_paid.get(v.case_id, -1) < v.decided_at),
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
