"""What the approval gate holds, read from the topics and Redis by a command (not a worker).

`makegood incident pending` and `approve`, the report and the replay need what every worker's feed
has: each incident's accepted revisions (outage.windows.v1, admitted as the feed admits them), the
operators' approvals (makegood.approvals.v1) and the frozen cost of each revision
(ledger.estimates). `read_holds` reads them once; `HoldState` answers with the same pure gate the
workers run (processors.approval).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from processors.approval import Cost, Hold, effective, holds, needs_estimate, released
from processors.limits import Limits
from processors.model import IncidentApproval, OutageWindow
from processors.policy import Policy
from processors.windows import IncidentHistory

from streams.decide.admit import Admission, Rejection
from streams.kafka.reader import PartitionReader
from streams.kafka.topics import APPROVALS, ENTITLEMENTS, OUTAGES, load_topic_specs
from streams.ledger.estimates import Estimates
from streams.ledger.store import Ledger
from streams.settings import Settings


@dataclass
class HoldState:
    limits: Limits | None
    raw: dict[str, IncidentHistory] = field(default_factory=dict)
    totals: dict[str, dict[int, Cost]] = field(default_factory=dict)
    approvals: dict[str, dict[int, Cost]] = field(default_factory=dict)
    records: dict[str, list[IncidentApproval]] = field(default_factory=dict)   # every approval, in order

    def _args(self, incident_id: str) -> tuple:
        return (self.raw[incident_id], self.totals.get(incident_id, {}), self.approvals.get(incident_id, {}),
                self.limits)

    def pending(self, incident_id: str | None = None) -> list[Hold]:
        return [h for i in sorted(self.raw) if incident_id in (None, i) for h in holds(*self._args(i))]

    def released(self, incident_id: str) -> int:
        """How many leading revisions of the incident are released."""
        return released(*self._args(incident_id))

    def effective(self) -> dict[str, IncidentHistory]:
        """The released prefix of every incident (empty ones left out), as the workers decide."""
        out = {i: effective(*self._args(i)) for i in self.raw}
        return {i: h for i, h in out.items() if h.revisions}

    def held(self) -> set[str]:
        return {h.incident_id for h in self.pending()}

    def cost(self, incident_id: str, revision: int) -> Cost | None:
        return self.totals.get(incident_id, {}).get(revision)


def gated(settings: Settings, admission: Admission, raw: dict[str, IncidentHistory]
          ) -> tuple[dict[str, IncidentHistory], dict[str, IncidentHistory], set[str]]:
    """For histories read elsewhere (the replay): (every incident, the released prefixes, the
    incidents with something held), under the admission's policy."""
    state = read_holds(settings, admission, raw=raw)
    return state.raw, state.effective(), state.held()


def read_holds(settings: Settings, admission: Admission, *, policy: Policy | None = None,
               raw: dict[str, IncidentHistory] | None = None) -> HoldState:
    """Every incident (unless given as `raw`), approval and frozen cost there is now (under
    `policy`'s limits, by default the admission's)."""
    state = HoldState((policy or admission.policy).approval, raw=dict(raw or {}))
    with PartitionReader(settings) as reader:
        for logical in (OUTAGES, APPROVALS) if raw is None else (APPROVALS,):
            real = settings.topic(logical)
            for raw in reader.read(real, reader.whole(real)):
                schema = "outage_window" if logical == OUTAGES else "incident_approval"
                got = admission.check(schema, raw.value, raw.key)
                if isinstance(got, Rejection):
                    continue       # the workers dead-lettered it
                if isinstance(got, OutageWindow):
                    history = state.raw.get(got.incident_id, IncidentHistory()).accept(got)
                    if history is not None:
                        state.raw[got.incident_id] = history
                else:
                    state.records.setdefault(got.incident_id, []).append(got)
                    state.approvals.setdefault(got.incident_id, {}).setdefault(
                        got.revision, Cost(got.remedies, got.amount_krw))
    wanted = [(i, w.revision) for i, h in state.raw.items() for w in h.revisions if needs_estimate(h, w.revision)]
    if wanted and state.limits is not None:
        partitions = load_topic_specs(settings.topics_file)[ENTITLEMENTS].partitions
        for (i, rev), cost in asyncio.run(_totals(settings, partitions, wanted)).items():
            state.totals.setdefault(i, {})[rev] = cost
    return state


async def _totals(settings: Settings, partitions: int, wanted: list[tuple[str, int]]) -> dict:
    ledger = Ledger(settings)
    try:
        return await Estimates(ledger, settings.redis_prefix, partitions).totals(wanted)
    finally:
        await ledger.close()
