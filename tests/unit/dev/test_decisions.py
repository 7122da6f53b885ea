"""The demo's reviewers (streams/dev/decisions.py): a few decisions, the same every run."""
from __future__ import annotations

import dataclasses

from processors.model import ReviewDecision, ReviewReason, from_dict
from processors.validate import validate_decision
from streams.dev.decisions import review_decisions
from tests.factories import END
from tests.unit.report.test_report import review


def test_three_approvals_one_denial_and_a_changed_decision():
    cases = [dataclasses.replace(review(f"v{i}", ReviewReason.LARGE_BUSINESS_LOSS), case_id=f"C-{i}",
                                 claimed_loss_krw=500_000 + 123_456 * i, reporter_id=f"biz{i}") for i in range(6)]
    cases.append(review("free", ReviewReason.FREE_SERVICE))
    pairs = review_decisions(list(reversed(cases)))
    assert pairs == review_decisions(cases)          # order of reading does not matter
    decisions = [from_dict(ReviewDecision, v) for _, v in pairs]
    for (key, _), d in zip(pairs, decisions):
        validate_decision(d)
        assert key == d.reporter_id
    assert [(d.case_id, d.verdict.name, d.amount_krw) for d in decisions] == [
        ("C-0", "APPROVE", 10_000), ("C-1", "APPROVE", 120_000), ("C-2", "APPROVE", 240_000),
        ("C-3", "DENY", None), ("C-0", "APPROVE", 60_000)]
    assert decisions[-1].decided_at > decisions[0].decided_at > END
