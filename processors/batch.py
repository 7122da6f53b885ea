"""The batch oracle: everything at once, in a canonical order, written plainly.

`evaluate` is what the live pipeline must agree with (DESIGN §4.3, §4.6): it takes
all inputs in any order, puts them in the order the contract defines, and runs the
same per-record decisions. It shares those decisions with the live path but none of
its bookkeeping (ledger, tables, re-triage of pending reports).

It triages each report once, with every revision known. That equals the live worker's
repeated triage of a waiting report because `triage_report` walks the incident's revisions
from the one in force when the report was submitted (processors.intake) and returns the whole
trail each time (receipt, rejection for now, decision): a live answer at an earlier revision
is a prefix of this one, and a final answer is never revisited. (That holds once the revisions
published before a report was submitted reached the worker before the report did; what a
lagging window feed can change is described in processors.intake.)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from processors.approval import Cost, Hold, effective, estimate, holds, needs_estimate, report_incidents
from processors.decisions import decide_review
from processors.entitlements import decide_entitlement
from processors.errors import InvalidRecord
from processors.model import (
    Outcome,
    DamageReport,
    EntitlementState,
    IncidentApproval,
    OutageWindow,
    RemedyAction,
    ReviewCase,
    ReviewDecision,
    Source,
    UserNotice,
)
from processors.policy import Policy
from processors.ids import case_id
from processors.reports import CaseState, match_incident, triage_report
from processors.validate import (validate_approval, validate_decision, validate_entitlement, validate_report,
                                 validate_window)
from processors.windows import IncidentHistory


@dataclass(frozen=True, slots=True)
class Invalid:
    source: Source
    reason: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What the batch evaluator says the pipeline must have published."""

    remedies: tuple[RemedyAction, ...]
    reviews: tuple[ReviewCase, ...]
    notices: tuple[UserNotice, ...]
    pending: tuple[str, ...]  # report ids not final: unmatched, incident OPEN, or outside intake so far
    invalid: tuple[Invalid, ...]
    counts: dict[str, int] = field(default_factory=dict)  # decisions by outcome name
    holds: tuple[Hold, ...] = ()  # revisions the approval limits hold (processors.approval)


def _src_key(s: Source) -> tuple[str, int, int]:
    return (s.topic, s.partition, s.offset)


def _valid(records, check, invalid: list[Invalid]):
    for record, source in records:
        try:
            check(record)
        except InvalidRecord as exc:
            invalid.append(Invalid(source, exc.reason))
            continue
        yield record, source


def evaluate(
    policy: Policy,
    windows: Iterable[tuple[OutageWindow, Source]],
    entitlements: Iterable[tuple[EntitlementState, Source]],
    reports: Iterable[tuple[DamageReport, Source]],
    *,
    approvals: Iterable[tuple[IncidentApproval, Source]] = (),
    decisions: Iterable[tuple[ReviewDecision, Source]] = (),
) -> Evaluation:
    """All remedies, reviews and notices the inputs earn under `policy`. With approval limits,
    an incident is decided against its released revisions only (processors.approval): each
    revision's cost is estimated over every entitlement's latest state, and `approvals` release
    what is over the limits.

    Review decisions are applied after every report, each reporter's in offset order (they
    share the reporter's partition, so that is the order the live worker reads them in); a
    decision for a case no report opened is listed as invalid, as the worker dead-letters it."""
    invalid: list[Invalid] = []
    counts: Counter[str] = Counter()

    # Incidents: each one's revisions in revision order, as if they had arrived in order.
    by_incident: dict[str, list[tuple[OutageWindow, Source]]] = defaultdict(list)
    for w, s in _valid(windows, lambda w: validate_window(w, policy), invalid):
        by_incident[w.incident_id].append((w, s))
    incidents: dict[str, IncidentHistory] = {}
    for incident_id, revs in sorted(by_incident.items()):
        revs.sort(key=lambda ws: (ws[0].revision, _src_key(ws[1])))
        incidents[incident_id] = IncidentHistory.of([w for w, _ in revs])

    # Entitlements: the latest state of each (max updated_at, then max offset).
    latest: dict[str, tuple[EntitlementState, Source]] = {}
    for e, s in _valid(entitlements, lambda e: validate_entitlement(e, policy), invalid):
        held = latest.get(e.entitlement_id)
        if held is None or (e.updated_at, s.offset, _src_key(s)) > (
            held[0].updated_at, held[1].offset, _src_key(held[1])
        ):
            latest[e.entitlement_id] = (e, s)

    raw_incidents = incidents
    incidents, on_hold = _gate(policy, incidents, latest, approvals, invalid)
    held_ids = {h.incident_id for h in on_hold}

    remedies: dict[str, RemedyAction] = {}
    reviews: dict[str, ReviewCase] = {}
    notices: dict[str, UserNotice] = {}
    issued_to: dict[tuple[str, str], list[RemedyAction]] = defaultdict(list)
    for entitlement_id in sorted(latest):
        e, s = latest[entitlement_id]
        for incident_id, history in incidents.items():
            decision = decide_entitlement(policy, history, e, s)
            counts[decision.outcome] += 1
            for r in decision.remedies:
                remedies[r.remedy_id] = r
                issued_to[(r.user_id, r.incident_id)].append(r)
            notices.update((n.notice_id, n) for n in decision.notices)

    # Reports: each reporter's in (submitted_at, report_id) order, folded through cases.
    unique: dict[str, tuple[DamageReport, Source]] = {}
    for r, s in _valid(reports, lambda r: validate_report(r, policy), invalid):
        held = unique.get(r.report_id)
        if held is None or _src_key(s) < _src_key(held[1]):
            unique[r.report_id] = (r, s)
    cases: dict[str, CaseState] = {}
    pending: list[str] = []
    for r, s in sorted(unique.values(), key=lambda rs: (rs[0].reporter_id, rs[0].submitted_at,
                                                       rs[0].report_id)):
        against = report_incidents(raw_incidents, held_ids, r)
        if against is None:             # about a held revision: waits with it, says nothing yet
            counts[Outcome.PENDING] += 1
            pending.append(r.report_id)
            continue
        matched = match_incident(against, r)
        case, covered = None, []
        if matched is not None and matched.incident_id is not None:
            case = cases.get(case_id(matched.incident_id, r.reporter_id, r.business_id))
            covered = issued_to.get((r.reporter_id, matched.incident_id), [])
        decision, case = triage_report(policy, against, r, s, case, covered)
        counts[decision.outcome] += 1
        if decision.outcome is Outcome.PENDING:
            pending.append(r.report_id)
        if case is not None:
            cases[case.case_id] = case
        for rem in decision.remedies:
            remedies[rem.remedy_id] = rem
        reviews.update((v.review_id, v) for v in decision.reviews)
        notices.update((n.notice_id, n) for n in decision.notices)

    for d, s in sorted(_valid(decisions, validate_decision, invalid), key=lambda ds: _src_key(ds[1])):
        try:
            decision, case = decide_review(policy, cases.get(d.case_id), d, s)
        except InvalidRecord as exc:
            invalid.append(Invalid(s, exc.reason))
            continue
        counts[decision.outcome] += 1
        cases[case.case_id] = case
        remedies.update((rem.remedy_id, rem) for rem in decision.remedies)
        notices.update((n.notice_id, n) for n in decision.notices)

    return Evaluation(
        remedies=tuple(remedies[k] for k in sorted(remedies)),
        reviews=tuple(reviews[k] for k in sorted(reviews)),
        notices=tuple(notices[k] for k in sorted(notices)),
        pending=tuple(sorted(pending)),
        invalid=tuple(sorted(invalid, key=lambda i: (_src_key(i.source), i.reason))),
        counts=dict(sorted(counts.items())),
        holds=tuple(on_hold),
    )


def _gate(policy: Policy, incidents: dict[str, IncidentHistory],
          latest: dict[str, tuple[EntitlementState, Source]],
          approvals: Iterable[tuple[IncidentApproval, Source]], invalid: list[Invalid],
          ) -> tuple[dict[str, IncidentHistory], list[Hold]]:
    """The released prefix of every incident, and the revisions held."""
    approved: dict[str, dict[int, Cost]] = defaultdict(dict)
    for a, _ in _valid(approvals, validate_approval, invalid):
        approved[a.incident_id][a.revision] = Cost(a.remedies, a.amount_krw)
    if policy.approval is None:
        return incidents, []
    states = [latest[k] for k in sorted(latest)]
    gated: dict[str, IncidentHistory] = {}
    held: list[Hold] = []
    for incident_id, history in incidents.items():
        totals = {w.revision: estimate(policy, history, w.revision, states)
                  for w in history.revisions if needs_estimate(history, w.revision)}
        released = effective(history, totals, approved[incident_id], policy.approval)
        held += holds(history, totals, approved[incident_id], policy.approval)
        if released.revisions:
            gated[incident_id] = released
    return gated, held
