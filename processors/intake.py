"""Report intake on event time (DESIGN §3, §4.3): which revision of its incident decides a report.

A report is judged by its incident as it stood when the report was submitted, and by every
revision after that; never by the order in which the pipeline happened to see them.

- The revision *in force* at `submitted_at` is the latest one published at or before it (the
  first one, for a report older than them all). Revisions it had superseded never judge the
  report: a shortening or a retraction applies to reports submitted after it was published.
- A retraction ends the incident: the revisions after it are void, as in the entitlements' walk.
- Submitted before the revision's `started_at`: rejected for good ("too-early"). The start is
  known while OPEN, and a final answer keeps a reporter's later reports from overtaking this
  one in its case.
- OPEN: the intake end is unknown, so nothing is final; the report waits (and is acknowledged).
- CLOSED: inside [started_at, ended_at + intake (+ business extra)) the report is admitted and
  decided for real. That is final: nothing issued is taken back by a later revision. Outside,
  it is rejected *for now* ("intake-closed"): a later revision may lengthen the window and
  admit it after all, so the caller keeps it for re-triage.
- RETRACTED: a report that no revision admitted is rejected for good.

The walk reads only its arguments, so its answer for a given history is the same however often
and whenever it is asked: a live worker re-asking at every revision ends where the batch
evaluator, asking once with every revision, does. What it cannot see is a revision published
before a report but not yet received (a lagging window feed): the worker then judges the report
by the revision before it. If that one was OPEN, the report holds a receipt the batch evaluator
does not list (true when sent); remedies differ only if the unseen revision took something away
(a shortening, a retraction, a re-opening) from a report an earlier close already admitted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from processors.model import DamageReport, IncidentStatus, OutageWindow, ReporterKind
from processors.policy import Policy
from processors.windows import IncidentHistory, contains


class Verdict(enum.Enum):
    WAITING = "waiting"      # no revision decided it yet: triage it again at the next one
    ADMITTED = "admitted"    # inside the intake of `Intake.at`: decide it for real
    REJECTED = "rejected"    # for good, for `Intake.why`


@dataclass(frozen=True, slots=True)
class Intake:
    """Where a report stands with its incident's revisions."""

    verdict: Verdict
    at: OutageWindow | None = None    # the revision that admitted or rejected it
    why: str | None = None            # REJECTED: "too-early" or "retracted"
    late: OutageWindow | None = None  # the first CLOSED revision whose intake had already ended


def effective(revisions: Sequence[OutageWindow]) -> Sequence[OutageWindow]:
    """The revisions up to and including the first retraction; any after it are void."""
    for i, rev in enumerate(revisions):
        if rev.status is IncidentStatus.RETRACTED:
            return revisions[: i + 1]
    return revisions


def in_force(revisions: Sequence[OutageWindow], t: int) -> int:
    """Index of the revision in force at t: the last one published at or before t, else 0."""
    k = 0
    for i, rev in enumerate(revisions):
        if rev.published_at <= t:
            k = i
    return k


def intake_end(policy: Policy, w: OutageWindow, kind: ReporterKind) -> int:
    """The first instant after a CLOSED revision's report intake for reporters of `kind`."""
    assert w.ended_at is not None
    end = w.ended_at + policy.reports.intake_ms
    if kind is ReporterKind.BUSINESS:
        end += policy.reports.business_extra_ms
    return end


def judge(policy: Policy, history: IncidentHistory, report: DamageReport) -> Intake:
    """Walk the incident's revisions from the one in force when the report was submitted."""
    revisions = effective(history.revisions)
    s = report.submitted_at
    late: OutageWindow | None = None
    for rev in revisions[in_force(revisions, s):]:
        if rev.status is IncidentStatus.RETRACTED:
            return Intake(Verdict.REJECTED, rev, "retracted", late)
        if s < rev.started_at:
            return Intake(Verdict.REJECTED, rev, "too-early", late)
        if rev.status is IncidentStatus.OPEN:
            continue
        if s < intake_end(policy, rev, report.reporter_kind):
            return Intake(Verdict.ADMITTED, rev, None, late)
        if late is None:
            late = rev
    return Intake(Verdict.WAITING, None, None, late)


def acknowledging(
    incidents: Mapping[str, IncidentHistory], report: DamageReport
) -> OutageWindow | None:
    """The OPEN revision in force when the report was submitted, of the incident it is about.

    A report submitted while its incident was open is acknowledged with a receipt. This looks
    at the revisions in force at submission, not at the latest ones, so the answer stays the
    same when a later close moves the window away from a report matched by time.
    """
    s = report.submitted_at
    if report.incident_id is not None:
        named = incidents.get(report.incident_id)
        candidates: list[IncidentHistory] = [named] if named is not None else []
    else:
        candidates = list(incidents.values())
    t = report.occurred_at if report.occurred_at is not None else s
    best: tuple[int, str] | None = None
    found: OutageWindow | None = None
    for history in candidates:
        revisions = effective(history.revisions)
        if not revisions:
            continue
        rev = revisions[in_force(revisions, s)]
        if rev.status is not IncidentStatus.OPEN or s < rev.started_at:
            continue  # decided by that revision, or about to be rejected as too early
        if report.incident_id is None and (
            report.service not in rev.services or not contains(rev.started_at, None, t)
        ):
            continue
        rank = (rev.started_at, rev.incident_id)  # independent of the mapping's order
        if best is None or rank < best:
            best, found = rank, rev
    return found
