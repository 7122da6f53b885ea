"""The billing lead's figures of a report, pure: what extensions are worth, what is still open.

- Extensions in won: an extension gives back service time the user paid for, worth the price of
  that time: price_krw / (period_days x 24) per hour of the entitlement's latest known state,
  times the hours extended. Entitlements with no price (free ones, or no state on the topic)
  are counted as unpriced hours, never guessed.
- Open exposure: review cases still awaiting a reviewer (streams/report/cases.py) and the won
  their reporters claimed; and what reviewers' decisions paid on the cases they decided.
- Event timing: when things happened by the records' own fields (outage start and end, remedies'
  decided_at), kept apart from when this pipeline happened to write them (broker timestamps).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

from processors.model import Action, RemedyAction, SubjectKind

from streams.report.cases import answered_cases, decided_cases, is_decision, open_reviews

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class ExtensionValue:
    service: str
    hours: int              # hours extended
    priced_hours: int       # of which the entitlement's price is known (and not 0)
    won: int                # their value


@dataclass(frozen=True)
class Exposure:
    open_cases: int
    open_claimed_won: int
    open_unstated: int      # open cases whose reporter stated no loss
    decided_cases: int      # review cases a reviewer's decision answered (paid or denied)
    decided_won: int        # what decisions paid on them (net of reversals)


@dataclass(frozen=True)
class EventTiming:
    outage_started: int | None
    outage_ended: int | None
    first_decided: int | None       # decided_at of the first remedy (event time)
    last_decided: int | None
    last_after_end_h: float | None  # last remedy's decided_at after the outage ended, hours


def extension_values(remedies: Sequence[RemedyAction],
                     prices: Mapping[str, tuple[int, int]]) -> tuple[ExtensionValue, ...]:
    """Per service; `prices` maps entitlement_id -> (price_krw, period_days)."""
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in remedies:
        if r.action is not Action.EXTEND or not r.extend_hours or r.subject_kind is not SubjectKind.ENTITLEMENT:
            continue
        row = acc[r.service]
        row[0] += r.extend_hours
        price, days = prices.get(r.subject_id, (0, 0))
        if price > 0 and days > 0:
            row[1] += r.extend_hours
            row[2] += round(price * r.extend_hours / (days * 24))
    return tuple(ExtensionValue(s, *v) for s, v in sorted(acc.items(), key=lambda kv: -kv[1][2]))


def exposure(reviews: Sequence, remedies: Sequence[RemedyAction], notices: Sequence = ()) -> Exposure:
    """`reviews` carry review_id, case_id and claimed_loss_krw (a ReviewCase does); `notices`
    may hold the REVIEW_DECIDED notices that answer a case without pay."""
    distinct = list({v.review_id: v for v in reviews}.values())
    still = open_reviews(distinct, remedies, notices)
    cases = {v.case_id for v in distinct}
    paid = cases & decided_cases(remedies)
    won = sum((-(r.amount_krw or 0) if r.action is Action.REVERSAL else (r.amount_krw or 0))
              for r in remedies if r.subject_kind is SubjectKind.REPORT and r.subject_id in paid
              and (is_decision(r) or r.action is Action.REVERSAL))
    decided = paid | answered_cases(distinct, notices)
    return Exposure(len(still), sum(v.claimed_loss_krw or 0 for v in still),
                    sum(1 for v in still if v.claimed_loss_krw is None), len(decided), won)


def event_timing(started: int | None, ended: int | None, remedies: Sequence[RemedyAction]) -> EventTiming:
    decided = [r.decided_at for r in remedies]
    first, last = (min(decided), max(decided)) if decided else (None, None)
    after = None if last is None or ended is None else (last - ended) / HOUR_MS
    return EventTiming(started, ended, first, last, after)
