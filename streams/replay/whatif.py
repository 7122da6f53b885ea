"""The what-if over a whole incident: its entitlements AND its damage reports, in one run.

`makegood replay outage.windows.v1 --dry-run --policy OTHER` sweeps the incidents of the range
against every entitlement (Replay.decide) and, here, also triages every damage report filed
against those incidents, so a policy that doubles business payouts shows what that costs. Each
policy is judged on its own: a report's "already covered" check (an individual who was given a
remedy for the service needs no payout) uses the remedies that same policy issued in this run,
not the live ledger, so the two columns never mix one policy's remedies with the other's.
"""
from __future__ import annotations

from collections import defaultdict

from processors.model import DamageReport, Decision, Outcome, RemedyAction, ReviewCase
from processors.policy import Policy
from processors.reports import CaseState, locate_case, match_incident, triage_report

from streams.kafka.reader import Span
from streams.kafka.topics import REPORTS
from streams.replay.replay import Events, Replay, fold_histories
from processors.model import Source


def load_incident_reports(job: Replay, ev: Events) -> None:
    """Every valid damage report on the topic, in topic order, into `ev.reports`."""
    real = job.real(REPORTS)
    spans: list[Span] = job.reader.whole(real)
    for raw in job.reader.read(real, spans, f"reading {REPORTS} (the incident's reports)"):
        report = job._decode("damage_report", raw, None)
        if isinstance(report, DamageReport):
            ev.reports.append((raw.key or b"", report, Source(real, raw.partition, raw.offset)))


def decide_incident(job: Replay, ev: Events, policy: Policy) -> list[Decision]:
    """The decisions `policy` makes for the incidents of the range: entitlements, then reports."""
    decisions, _ = job.decide(ev, policy)
    issued: dict[str, list[RemedyAction]] = defaultdict(list)
    for d in decisions:
        for r in d.remedies:
            issued[r.user_id].append(r)
    histories = fold_histories(ev.windows, policy)
    cases: dict[bytes, dict[str, CaseState]] = defaultdict(dict)
    for key, report, source in ev.reports:
        history = match_incident(histories, report)
        if history is None or history.incident_id not in ev.incidents:
            continue
        cid = locate_case(histories, report)
        case = cases[key].get(cid) if cid else None
        decision, new_case = triage_report(policy, histories, report, source, case, issued[report.reporter_id])
        if decision.outcome is not Outcome.PENDING and new_case is not None:
            cases[key][new_case.case_id] = new_case
        decisions.append(decision)
    return decisions


def reviews_of(decisions: list[Decision]) -> list[ReviewCase]:
    return list({v.review_id: v for d in decisions for v in d.reviews}.values())
