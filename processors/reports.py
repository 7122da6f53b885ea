"""Damage-report triage (DESIGN §3): match, check intake, pay by tier, or route to review.

Intake is judged on event time by processors.intake: a report waits while its incident is
OPEN and is decided at the close, or again when a revision lengthens the window.

One case per (incident, reporter, business_id) accumulates that reporter's reports;
the caller stores the CaseState this returns and passes it back for the next report
(`locate_case` tells it which case a report belongs to before triage).
Personal data (title, body, contacts) is copied into ReviewCase and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from processors import ids
from processors.intake import Verdict, acknowledging, intake_end, judge
from processors.model import (
    Outcome,
    Action,
    DamageReport,
    Decision,
    IncidentStatus,
    NoticeKind,
    RemedyAction,
    ReportCategory,
    ReporterKind,
    ReviewCase,
    ReviewReason,
    Source,
    SubjectKind,
    UserNotice,
)
from processors.notices import Given, locale_for, report_notice, when
from processors.policy import Policy, Routing
from processors.windows import IncidentHistory, contains

PENDING = Decision(outcome=Outcome.PENDING)
DUPLICATE = Decision(outcome=Outcome.DUPLICATE)


@dataclass(frozen=True, slots=True)
class CaseState:
    case_id: str
    incident_id: str
    reporter_id: str
    business_id: str | None
    paid_krw: int = 0
    payout_ids: tuple[str, ...] = ()
    reviewed: frozenset[str] = frozenset()  # ReviewReason names already opened
    report_ids: tuple[str, ...] = ()
    # reviewers' decisions (processors.decisions): what they paid on top of the tiers
    review_paid_krw: int = 0
    review_payout_ids: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()         # fingerprints of the decisions applied, in order
    service: str = ""                       # the service of the case's first report
    locale: str | None = None               # the language of the reporter's latest report


def match_incident(
    incidents: Mapping[str, IncidentHistory], report: DamageReport
) -> IncidentHistory | None:
    """The incident a report is about: by incident_id, else by service and time."""
    if report.incident_id is not None:
        history = incidents.get(report.incident_id)
        return history if history is not None and history.latest is not None else None
    t = report.occurred_at if report.occurred_at is not None else report.submitted_at
    best: tuple[bool, int, str] | None = None
    found: IncidentHistory | None = None
    for history in incidents.values():
        w = history.latest
        if w is None or report.service not in w.services:
            continue
        if not contains(w.started_at, w.ended_at, t):
            continue
        # Prefer a real incident over a retracted one, then the earliest, then by id,
        # so the choice does not depend on the mapping's iteration order.
        rank = (w.status is IncidentStatus.RETRACTED, w.started_at, w.incident_id)
        if best is None or rank < best:
            best, found = rank, history
    return found


def locate_case(incidents: Mapping[str, IncidentHistory], report: DamageReport) -> str | None:
    """The case_id triage would file this report under, or None while it is unmatched."""
    history = match_incident(incidents, report)
    if history is None or history.incident_id is None:
        return None
    return ids.case_id(history.incident_id, report.reporter_id, report.business_id)


def triage_report(
    policy: Policy,
    incidents: Mapping[str, IncidentHistory],
    report: DamageReport,
    source: Source,
    case: CaseState | None,
    covered: Sequence[RemedyAction],
) -> tuple[Decision, CaseState | None]:
    """Decide what one report earns; returns the decision and the case to store.

    Intake is judged on event time (processors.intake). Outcome PENDING means "not final": the
    report matches no incident yet, its incident is still OPEN, or it fell outside every intake
    so far; the caller keeps it and triages it again when a revision arrives. Every answer
    carries the whole trail of notices so far (receipt, rejection for now, decision), each
    with an id of its own, so asking again only repeats ids the ledger already holds.
    """
    receipt = _receipt(policy, incidents, report, source)
    told: tuple[UserNotice, ...] = (receipt,) if receipt is not None else ()
    history = match_incident(incidents, report)
    if history is None:
        return (Decision(notices=told, outcome=Outcome.PENDING) if told else PENDING), case
    incident_id = history.incident_id
    assert incident_id is not None
    cid = ids.case_id(incident_id, report.reporter_id, report.business_id)
    if case is not None and case.case_id != cid:
        raise ValueError(f"report {report.report_id} belongs to case {cid}, not {case.case_id}")
    if case is not None and report.report_id in case.report_ids:
        return DUPLICATE, case  # a replayed report: its outputs were decided the first time

    intake = judge(policy, history, report)
    s = report.submitted_at
    if intake.late is not None:  # told at that close that intake had ended, which may change
        late = _Triage(policy, report, source, incident_id, max(s, intake.late.published_at), told)
        deadline = intake_end(policy, intake.late, report.reporter_kind)
        told = late.finish(Outcome.REJECTED, NoticeKind.REPORT_REJECTED, "intake-closed",
                           deadline=when(policy, deadline, late.locale)).notices
    if intake.verdict is Verdict.WAITING:
        return Decision(notices=told, outcome=Outcome.PENDING), case
    assert intake.at is not None
    t = _Triage(policy, report, source, incident_id, max(s, intake.at.published_at), told,
                reconsidered=intake.late is not None)
    if intake.verdict is Verdict.REJECTED:
        assert intake.why is not None
        if intake.late is not None:  # already told it is rejected: a retraction adds nothing
            return Decision(notices=told, outcome=Outcome.REJECTED), case
        return t.finish(Outcome.REJECTED, NoticeKind.REPORT_REJECTED, intake.why,
                        started=when(policy, intake.at.started_at, t.locale)), case

    state = case or CaseState(cid, incident_id, report.reporter_id, report.business_id, service=report.service)
    state = dataclasses.replace(state, report_ids=state.report_ids + (report.report_id,),
                                locale=report.locale or state.locale)
    if report.reporter_kind is ReporterKind.BUSINESS:
        state = t.business(state)
    else:
        state = t.individual(state, covered)
    return t.decision, state


def _receipt(policy: Policy, incidents: Mapping[str, IncidentHistory], report: DamageReport,
             source: Source) -> UserNotice | None:
    """The receipt of a report submitted while its incident was OPEN, else None."""
    rev = acknowledging(incidents, report)
    if rev is None:
        return None
    return report_notice(
        policy=policy,
        locale=locale_for(policy, report.locale),
        report_id=report.report_id,
        user_id=report.reporter_id,
        incident_id=rev.incident_id,
        kind=NoticeKind.REPORT_RECEIVED,
        why="received",
        remedy_ids=(),
        decided_at=max(report.submitted_at, rev.published_at),
        source=source,
    )


class _Triage:
    """Collects the outputs of triaging one report (local to one call)."""

    def __init__(self, policy: Policy, report: DamageReport, source: Source, incident_id: str,
                 decided_at: int, told: tuple[UserNotice, ...] = (), *,
                 reconsidered: bool = False) -> None:
        self.policy = policy
        self.report = report
        self.source = source
        self.incident_id = incident_id
        self.decided_at = decided_at
        self.told = told                  # notices the report was given before this decision
        self.reconsidered = reconsidered  # decided after being told intake had ended
        self.locale = locale_for(policy, report.locale)
        self.remedies: list[Given] = []
        self.reviews: list[ReviewCase] = []
        self.decision = Decision()

    def finish(self, outcome: Outcome, kind: NoticeKind, why: str,
               remedy_ids: tuple[str, ...] = (), **values: str) -> Decision:
        notice = report_notice(
            policy=self.policy,
            locale=self.locale,
            report_id=self.report.report_id,
            user_id=self.report.reporter_id,
            incident_id=self.incident_id,
            kind=kind,
            why=why,
            remedy_ids=remedy_ids,
            decided_at=self.decided_at,
            source=self.source,
            reconsidered=self.reconsidered,
            given=self.remedies,
            **values,
        )
        self.decision = Decision(tuple(r for r, _ in self.remedies), tuple(self.reviews),
                                 (*self.told, notice), outcome)
        return self.decision

    def review(self, state: CaseState, reason: ReviewReason) -> CaseState:
        if reason.name in state.reviewed:
            self.finish(Outcome.IN_REVIEW, NoticeKind.REPORT_IN_REVIEW, "already-in-review")
            return state
        r = self.report
        self.reviews.append(ReviewCase(
            review_id=ids.review_id(state.case_id, reason.name),
            case_id=state.case_id,
            incident_id=self.incident_id,
            reporter_id=r.reporter_id,
            reporter_kind=r.reporter_kind,
            business_id=r.business_id,
            service=r.service,
            category=r.category,
            claimed_loss_krw=r.claimed_loss_krw,
            reason=reason,
            report_ids=state.report_ids,
            title=r.title,
            body=r.body,
            contact_email=r.contact_email,
            contact_phone=r.contact_phone,
            policy_version=self.policy.version,
            decided_at=self.decided_at,
            source=self.source,
        ))
        self.finish(Outcome.IN_REVIEW, NoticeKind.REPORT_IN_REVIEW, "in-review")
        return dataclasses.replace(state, reviewed=state.reviewed | {reason.name})

    def business(self, state: CaseState) -> CaseState:
        loss = self.report.claimed_loss_krw
        if loss is None:
            return self.review(state, ReviewReason.BUSINESS_LOSS_UNSTATED)
        tier = self.policy.reports.tier_for(loss)
        if tier is None:
            return self.review(state, ReviewReason.LARGE_BUSINESS_LOSS)
        if tier.payout_krw <= state.paid_krw:
            self.finish(Outcome.NO_CHANGE, NoticeKind.REPORT_NO_CHANGE, "no-change")
            return state
        seq = len(state.payout_ids)
        payout = RemedyAction(
            remedy_id=ids.remedy_id(self.incident_id, self.policy.reports.payout_rule_id,
                                    state.case_id, seq),
            incident_id=self.incident_id,
            rule_id=self.policy.reports.payout_rule_id,
            policy_version=self.policy.version,
            action=Action.PAYOUT,
            user_id=self.report.reporter_id,
            subject_kind=SubjectKind.REPORT,
            subject_id=state.case_id,
            service=self.report.service,
            extend_hours=None,
            amount_krw=tier.payout_krw - state.paid_krw,
            supersedes=state.payout_ids[0] if state.payout_ids else None,
            decided_at=self.decided_at,
            source=self.source,
        )
        self.remedies.append((payout, tier.payout_krw))
        self.finish(Outcome.PAID, NoticeKind.REPORT_COVERED, "topped-up" if seq else "paid",
                    (payout.remedy_id,))
        return dataclasses.replace(state, paid_krw=tier.payout_krw,
                                   payout_ids=state.payout_ids + (payout.remedy_id,))

    def individual(self, state: CaseState, covered: Sequence[RemedyAction]) -> CaseState:
        category = self.report.category
        routing = self.policy.reports.routing[category]
        if routing is Routing.REJECT:
            self.finish(Outcome.REJECTED, NoticeKind.REPORT_REJECTED, "not-covered")
            return state
        if routing is Routing.COVERED_OR_REVIEW:
            names = _standing_remedies(covered, self.report.reporter_id, self.incident_id,
                                       self.report.service)
            if names:
                self.finish(Outcome.COVERED, NoticeKind.REPORT_COVERED, "covered", names)
                return state
            return self.review(state, ReviewReason.PAID_SERVICE_UNCOVERED)
        reason = {
            ReportCategory.FREE_SERVICE: ReviewReason.FREE_SERVICE,
            ReportCategory.PAID_SERVICE: ReviewReason.PAID_SERVICE_UNCOVERED,
        }.get(category, ReviewReason.OTHER)
        return self.review(state, reason)


def _standing_remedies(covered: Sequence[RemedyAction], user_id: str, incident_id: str,
                       service: str) -> tuple[str, ...]:
    """Ids of entitlement remedies issued to the user on the service for the incident, not
    reversed. A report payout (the user's business case) covers no individual's paid service;
    the caller's list may hold one (the ledger indexes every remedy of a user)."""
    relevant = [r for r in covered
                if r.user_id == user_id and r.incident_id == incident_id and r.service == service
                and r.subject_kind is SubjectKind.ENTITLEMENT]
    reversed_ids = {r.supersedes for r in relevant if r.action is Action.REVERSAL}
    return tuple(sorted(r.remedy_id for r in relevant
                        if r.action is not Action.REVERSAL and r.remedy_id not in reversed_ids))
