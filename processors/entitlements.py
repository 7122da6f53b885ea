"""What one entitlement is owed for one incident (DESIGN §3, §4.1, §4.3).

`decide_entitlement` replays the incident's accepted revisions from the first, so
its answer depends only on (policy, accepted revisions, latest entitlement state),
never on arrival order. It returns the whole canonical remedy sequence each time;
callers drop ids their ledger already holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.ids import remedy_id
from processors.model import (
    Outcome,
    Action,
    Decision,
    EntitlementState,
    IncidentStatus,
    OutageWindow,
    RemedyAction,
    Source,
    SubjectKind,
)
from processors.notices import Given, locale_for, remedies_notice
from processors.policy import Eligibility, OnRetract, Policy, RemedyKind, Rule
from processors.windows import (
    IncidentHistory,
    active_at,
    active_during,
    expired_during,
    outage_hours,
)

NO_RULE = Decision(outcome=Outcome.NO_RULE)
PENDING = Decision(outcome=Outcome.PENDING)
NOT_ELIGIBLE = Decision(outcome=Outcome.NOT_ELIGIBLE)


def credit_krw(price_krw: int, hours: int, period_days: int) -> int:
    """price × hours / (period_days × 24), rounded half up, in integers only."""
    numerator = price_krw * hours
    denominator = period_days * 24
    return (2 * numerator + denominator) // (2 * denominator)


def eligible(rule: Rule, ent: EntitlementState, w: OutageWindow) -> bool:
    """Whether `ent` qualifies under `rule` for the closed window `w`."""
    assert w.ended_at is not None
    if rule.eligibility is Eligibility.ACTIVE_DURING_WINDOW:
        return active_during(ent, w.started_at, w.ended_at)
    if rule.eligibility is Eligibility.EXPIRED_DURING_WINDOW:
        return expired_during(ent, w.started_at, w.ended_at)
    assert rule.active_at is not None
    return active_at(ent, rule.active_at)


def owed(rule: Rule, ent: EntitlementState, w: OutageWindow) -> int:
    """Hours (EXTEND, GRANT) or won (CREDIT) owed under `rule` for window `w`; 0 = nothing."""
    if not eligible(rule, ent, w):
        return 0
    remedy = rule.remedy
    if remedy.kind is RemedyKind.EXTEND_OUTAGE:
        return outage_hours(w, remedy.unit_ms)
    if remedy.kind is RemedyKind.CREDIT:
        return credit_krw(ent.price_krw, remedy.hours, ent.period_days)
    return remedy.hours


@dataclass(slots=True)
class _Issued:
    """Per-rule progress of the walk (local to one call, hence mutable)."""

    first_id: str
    total: int
    next_seq: int


def decide_entitlement(
    policy: Policy, history: IncidentHistory, ent: EntitlementState, source: Source
) -> Decision:
    """The canonical remedies (and their notices) `ent` is owed for the incident in `history`."""
    rules = policy.rules_for(ent.service, ent.kind, ent.billing_channel)
    if not rules:
        return NO_RULE
    incident_id = history.incident_id
    if incident_id is None:
        return PENDING
    rules = [r for r in rules if r.applies_to(incident_id)]
    if not rules:
        return NO_RULE

    walk: list[RemedyAction] = []
    groups: list[list[Given]] = []   # what each revision gave: one notice each (processors.notices)
    issued: dict[str, _Issued] = {}
    closed_seen = retracted = False

    def emit(rule: Rule, action: Action, seq: int, value: int, supersedes: str | None,
             decided_at: int, money: bool) -> RemedyAction:
        remedy = RemedyAction(
            remedy_id=remedy_id(incident_id, rule.id, ent.entitlement_id, seq),
            incident_id=incident_id,
            rule_id=rule.id,
            policy_version=policy.version,
            action=action,
            user_id=ent.user_id,
            subject_kind=SubjectKind.ENTITLEMENT,
            subject_id=ent.entitlement_id,
            service=ent.service,
            extend_hours=None if money else value,
            amount_krw=value if money else None,
            supersedes=supersedes,
            decided_at=decided_at,
            source=source,
        )
        walk.append(remedy)
        return remedy

    def given(remedy: RemedyAction, total: int) -> None:
        groups[-1].append((remedy, total))

    for rev in history.revisions:
        if rev.status is IncidentStatus.OPEN:
            continue
        decided_at = max(ent.updated_at, rev.published_at)
        groups.append([])
        if rev.status is IncidentStatus.RETRACTED:
            retracted = True
            if policy.on_retract is OnRetract.REVERSE:
                by_id = {r.id: r for r in rules}
                for done in list(walk):
                    rule = by_id[done.rule_id]
                    progress = issued[rule.id]
                    money = done.amount_krw is not None
                    value = done.amount_krw if money else done.extend_hours
                    assert value is not None
                    given(emit(rule, Action.REVERSAL, progress.next_seq, value, done.remedy_id,
                               decided_at, money), value)
                    progress.next_seq += 1
            break
        closed_seen = True
        if ent.service not in rev.services:
            continue
        for rule in rules:
            amount = owed(rule, ent, rev)
            if amount <= 0:
                continue
            money = rule.remedy.kind is RemedyKind.CREDIT
            progress = issued.get(rule.id)
            if progress is None:
                first = emit(rule, rule.remedy.action, 0, amount, None, decided_at, money)
                issued[rule.id] = _Issued(first.remedy_id, amount, 1)
                given(first, amount)
            elif rule.remedy.duration_based and amount > progress.total:
                given(emit(rule, rule.remedy.action, progress.next_seq, amount - progress.total,
                           progress.first_id, decided_at, money), amount)
                progress.total = amount
                progress.next_seq += 1

    if walk:
        return Decision(
            remedies=tuple(walk),
            notices=tuple(remedies_notice(policy, locale_for(policy, ent.locale), g, source)
                          for g in groups if g),
            outcome=Outcome.REMEDIED,
        )
    if retracted:
        return Decision(outcome=Outcome.RETRACTED)
    return NOT_ELIGIBLE if closed_seen else PENDING
