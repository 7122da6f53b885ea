"""A model of the live worker's bookkeeping around the processors, for order-free tests.

It follows streams/worker: a window revision is accepted into its incident's history (stale
ones skipped), every stored entitlement is decided again, then every reporter's waiting reports
are triaged again in arrival order; a report is triaged after its reporter's waiting ones; a
PENDING decision keeps the report waiting, any other stores its case. Outputs go through a
ledger: an id already issued is dropped (the first record of an id is the one on the topic).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from processors.entitlements import decide_entitlement
from processors.model import (DamageReport, Decision, EntitlementState, Outcome, OutageWindow,
                              RemedyAction, ReviewCase, Source, UserNotice)
from processors.policy import Policy
from processors.reports import CaseState, locate_case, triage_report
from processors.windows import IncidentHistory

Arrival = tuple[Any, Source]


@dataclass
class Live:
    policy: Policy
    histories: dict[str, IncidentHistory] = field(default_factory=dict)
    entitlements: dict[str, tuple[EntitlementState, Source]] = field(default_factory=dict)
    cases: dict[str, CaseState] = field(default_factory=dict)
    waiting: dict[str, list[tuple[DamageReport, Source]]] = field(default_factory=lambda: defaultdict(list))
    remedies: dict[str, RemedyAction] = field(default_factory=dict)
    reviews: dict[str, ReviewCase] = field(default_factory=dict)
    notices: dict[str, UserNotice] = field(default_factory=dict)
    decisions: list[tuple[str, Decision]] = field(default_factory=list)  # (report_id, decision)

    def feed(self, arrivals: Iterable[Arrival]) -> "Live":
        for record, source in arrivals:
            if isinstance(record, OutageWindow):
                self.window(record)
            elif isinstance(record, EntitlementState):
                self.entitlement(record, source)
            else:
                self.report(record, source)
        return self

    def window(self, w: OutageWindow) -> None:
        held = self.histories.get(w.incident_id, IncidentHistory())
        accepted = held.accept(w)
        if accepted is None:
            return
        self.histories[w.incident_id] = accepted
        for e, s in self.entitlements.values():
            for history in self.histories.values():
                self._emit(decide_entitlement(self.policy, history, e, s))
        for reporter in sorted(self.waiting):
            queue, self.waiting[reporter] = self.waiting[reporter], []
            for r, s in queue:
                self._triage(r, s)

    def entitlement(self, e: EntitlementState, source: Source) -> None:
        self.entitlements[e.entitlement_id] = (e, source)
        for history in self.histories.values():
            self._emit(decide_entitlement(self.policy, history, e, source))

    def report(self, r: DamageReport, source: Source) -> None:
        queue, self.waiting[r.reporter_id] = self.waiting[r.reporter_id], []
        for held, s in [*queue, (r, source)]:
            self._triage(held, s)

    def _triage(self, r: DamageReport, source: Source) -> None:
        cid = locate_case(self.histories, r)
        case = self.cases.get(cid) if cid else None
        covered = [x for x in self.remedies.values() if x.user_id == r.reporter_id] if cid else []
        decision, new_case = triage_report(self.policy, self.histories, r, source, case, covered)
        self.decisions.append((r.report_id, decision))
        if decision.outcome is Outcome.PENDING:
            self.waiting[r.reporter_id].append((r, source))
        elif new_case is not None:
            self.cases[new_case.case_id] = new_case
        self._emit(decision)

    def _emit(self, d: Decision) -> None:
        for x in d.remedies:
            self.remedies.setdefault(x.remedy_id, x)
        for v in d.reviews:
            self.reviews.setdefault(v.review_id, v)
        for n in d.notices:
            self.notices.setdefault(n.notice_id, n)

    def last(self, report_id: str) -> Decision:
        """The latest decision taken for a report."""
        return [d for rid, d in self.decisions if rid == report_id][-1]

    def outputs(self) -> tuple[tuple[RemedyAction, ...], tuple[ReviewCase, ...], tuple[UserNotice, ...]]:
        """What is on the output topics, each in id order (as the batch evaluator lists them)."""
        return (tuple(self.remedies[k] for k in sorted(self.remedies)),
                tuple(self.reviews[k] for k in sorted(self.reviews)),
                tuple(self.notices[k] for k in sorted(self.notices)))
