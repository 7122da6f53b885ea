"""Guarded issuance: an incident revision that would cost more than the policy's approval
limits (processors.limits) is decided but held, and issues nothing until an operator approves it.

**Cost.** The cost of revision N is what the incident's remedies to entitlements add up to when
its history ends at N: every remedy the walk would have issued by then (first remedies, top-ups,
reversals), counted and summed in won, over the entitlement states known when it was estimated
(`estimate`). It is cumulative, because the limits are per incident. An OPEN revision issues
nothing (the walk skips it), so it costs what the revisions before it cost and needs no estimate.

**The gate** (`released`): how many leading revisions of a history may be acted on. It stops at
the first revision that is held (its cost since the last approval exceeds `above_remedies` or
`above_won`) or has no estimate yet (the cluster-wide count is still being made: waiting is safe,
issuing is not). An approval of revision N releases every revision up to N, so approving the latest
revision approves what it supersedes, and it becomes the baseline later revisions are measured from
(the cost the operator approved). Approvals of revisions the history does not have are ignored.

Everything that decides (the worker's arrival path and sweeps, report triage, the replay and the
batch evaluator) sees only the released prefix (`effective`): a held revision issues nothing
anywhere; an approval lengthens the released prefix, and the ordinary sweep issues what the longer
history owes, each id once. Damage reports are not counted (each is one person's claim, paid by
tier); they are matched against the released prefix, so a report about a held revision waits with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from processors.entitlements import decide_entitlement
from processors.limits import Limits
from processors.model import DamageReport, EntitlementState, IncidentStatus, RemedyAction, Source
from processors.policy import Policy
from processors.reports import match_incident
from processors.windows import IncidentHistory


@dataclass(frozen=True, slots=True)
class Cost:
    """Remedies and won, in total and by (service, action)."""

    remedies: int = 0
    won: int = 0
    by: tuple[tuple[str, str, int, int], ...] = ()  # (service, action, remedies, won), sorted

    def plus(self, other: Cost) -> Cost:
        return cost_from(self.by + other.by)

    def to_plain(self) -> dict:
        return {"remedies": self.remedies, "won": self.won, "by": [list(row) for row in self.by]}

    @classmethod
    def from_plain(cls, d: Mapping) -> Cost:
        return cost_from((str(s), str(a), int(n), int(w)) for s, a, n, w in d.get("by", ()))


def cost_from(rows: Iterable[tuple[str, str, int, int]]) -> Cost:
    """Rows of (service, action, remedies, won) summed per (service, action)."""
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for service, action, n, won in rows:
        acc[(service, action)][0] += n
        acc[(service, action)][1] += won
    by = tuple((s, a, n, w) for (s, a), (n, w) in sorted(acc.items()))
    return Cost(sum(r[2] for r in by), sum(r[3] for r in by), by)


def cost_of(remedies: Iterable[RemedyAction]) -> Cost:
    return cost_from((r.service, r.action.value, 1, r.amount_krw or 0) for r in remedies)


def upto(history: IncidentHistory, revision: int) -> IncidentHistory:
    """The history as it stood when `revision` was its latest."""
    return IncidentHistory(tuple(w for w in history.revisions if w.revision <= revision))


def needs_estimate(history: IncidentHistory, revision: int) -> bool:
    """Whether the gate needs the cost of `revision` (an OPEN one costs what came before)."""
    return any(w.revision == revision and w.status is not IncidentStatus.OPEN for w in history.revisions)


def estimate(policy: Policy, history: IncidentHistory, revision: int,
             states: Iterable[tuple[EntitlementState, Source]]) -> Cost:
    """The cost of `revision` over `states` (latest state per entitlement; one partition's, or all)."""
    prefix = upto(history, revision)
    rows = [(r.service, r.action.value, 1, r.amount_krw or 0)
            for e, s in states for r in decide_entitlement(policy, prefix, e, s).remedies]
    return cost_from(rows)


def exceeds(total: Cost, base: Cost, limits: Limits) -> bool:
    return (total.remedies - base.remedies > limits.above_remedies
            or total.won - base.won > limits.above_won)


@dataclass(frozen=True, slots=True)
class Hold:
    """A revision the gate does not release yet, and why: `estimating` (no cluster-wide cost
    yet), `held` (over the limits; `cost` is its cost, `since` the approved baseline), or
    `behind` (it waits for the earlier revision `behind`)."""

    incident_id: str
    revision: int
    state: str
    cost: Cost | None
    since: Cost
    behind: int | None = None


def released(history: IncidentHistory, totals: Mapping[int, Cost], approvals: Mapping[int, Cost],
             limits: Limits | None) -> int:
    """How many leading revisions of `history` are released (see the module's doc)."""
    return _walk(history, totals, approvals, limits)[0]


def holds(history: IncidentHistory, totals: Mapping[int, Cost], approvals: Mapping[int, Cost],
          limits: Limits | None) -> list[Hold]:
    """Every revision the gate does not release, in order."""
    return _walk(history, totals, approvals, limits)[1]


def _walk(history: IncidentHistory, totals: Mapping[int, Cost], approvals: Mapping[int, Cost],
          limits: Limits | None) -> tuple[int, list[Hold]]:
    revs = history.revisions
    if limits is None or not revs:
        return len(revs), []
    known = {w.revision for w in revs}
    approved = {r: c for r, c in approvals.items() if r in known}
    top = max(approved, default=-1)
    base = Cost()
    for i, w in enumerate(revs):
        if w.revision <= top:
            base = approved.get(w.revision, base)
            continue
        if w.status is IncidentStatus.OPEN:
            continue
        total = totals.get(w.revision)
        if total is None or exceeds(total, base, limits):
            return i, _pending(history, i, totals, base)
    return len(revs), []


def _pending(history: IncidentHistory, first: int, totals: Mapping[int, Cost], base: Cost) -> list[Hold]:
    out: list[Hold] = []
    incident_id = history.incident_id or ""
    gate = history.revisions[first].revision
    for w in history.revisions[first:]:
        cost = totals.get(w.revision)
        if w.revision == gate:
            out.append(Hold(incident_id, w.revision, "estimating" if cost is None else "held", cost, base))
        else:
            out.append(Hold(incident_id, w.revision, "behind", cost, base, behind=gate))
    return out


def effective(history: IncidentHistory, totals: Mapping[int, Cost], approvals: Mapping[int, Cost],
              limits: Limits | None) -> IncidentHistory:
    """The released prefix of `history`: what every decision is made against."""
    n = released(history, totals, approvals, limits)
    return history if n == len(history.revisions) else IncidentHistory(history.revisions[:n])


def report_incidents(raw: Mapping[str, IncidentHistory], held: Set[str],
                     report: DamageReport) -> dict[str, IncidentHistory] | None:
    """The incidents a damage report is triaged against: every incident with nothing held; or
    None when the report is about an incident with a revision not released yet, and waits (no
    receipt, no decision) until it is. Triage walks the revisions in force when the report was
    submitted, so it must see the whole history or none of it."""
    matched = match_incident(raw, report)
    if matched is not None and matched.incident_id in held:
        return None
    return {i: h for i, h in raw.items() if i not in held} if held else dict(raw)
