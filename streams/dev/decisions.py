"""The demo's reviewers: a few decisions on the cases the pipeline sent to review.

`review_decisions(cases)` is a pure function of the review cases read back from
remedy.reviews.v1: the large business losses in case-id order, the first three approved
(the claimed loss above 500,000 won, at most 1,000,000, in whole 10,000s), the fourth denied,
and the first one decided again with 50,000 won more (a changed decision: a top-up).
Values are plain Avro, keyed by the reporter like the reports (remedy.review-decisions.v1).
"""
from __future__ import annotations

from typing import Sequence

from processors.model import ReviewCase, ReviewReason

from streams.dev.scenario import BUSINESS_CLOSES, DAY, Pair

APPROVED, DENIED = 3, 1
REVIEWER = "demo-reviewer-1"


def _approved(case: ReviewCase) -> int:
    above = (case.claimed_loss_krw or 0) - 500_000
    return max(10_000, min(1_000_000, above) // 10_000 * 10_000)


def review_decisions(cases: Sequence[ReviewCase]) -> list[Pair]:
    large = sorted({c.case_id: c for c in cases if c.reason is ReviewReason.LARGE_BUSINESS_LOSS}.values(),
                   key=lambda c: c.case_id)
    at = BUSINESS_CLOSES + 7 * DAY           # a week after the business intake closed

    def decision(case: ReviewCase, verdict: str, amount: int | None, later: int = 0) -> Pair:
        return case.reporter_id, {"case_id": case.case_id, "review_id": case.review_id,
                                  "reporter_id": case.reporter_id, "verdict": verdict, "amount_krw": amount,
                                  "reviewer_id": REVIEWER, "note": "demo: receipts checked",
                                  "decided_at": at + later}

    out = [decision(c, "APPROVE", _approved(c)) for c in large[:APPROVED]]
    out += [decision(c, "DENY", None) for c in large[APPROVED:APPROVED + DENIED]]
    if large:
        out.append(decision(large[0], "APPROVE", _approved(large[0]) + 50_000, later=DAY))
    return out
