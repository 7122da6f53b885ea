"""What the approval gate holds, read from the topics and Redis by a command (not a worker).

`makegood incident pending` and `approve`, the report and the replay need what every worker's feed
has: each incident's accepted revisions (outage.windows.v1, admitted as the feed admits them), the
operators' approvals (makegood.approvals.v1) and the frozen cost of each revision
(ledger.estimates). `read_holds` reads them once; `HoldState` answers with the same pure gate the
workers run (processors.approval).
"""
from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

from processors.approval import Cost, Hold, effective, holds, needs_estimate, released
from processors.errors import InvalidRecord
from processors.limits import Limits
from processors.model import IncidentApproval, OutageWindow
from processors.policy import Policy
from processors.validate import validate_approval
from processors.windows import IncidentHistory

from streams.decide.admit import Admission, Rejection
from streams.errors import CommandError, ProduceError
from streams.kafka.producer import Producer
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


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_approval(state: HoldState, incident_id: str, revision: int) -> Hold:
    """The hold an approval of (incident, revision) releases, or CommandError saying why not."""
    history = state.raw.get(incident_id)
    if history is None:
        raise CommandError(f"unknown incident {incident_id}: no outage window names it")
    revisions = [w.revision for w in history.revisions]
    if revision not in revisions:
        raise CommandError(f"incident {incident_id} has no revision {revision} "
                           f"(its revisions: {', '.join(map(str, revisions))})")
    done = [a for a in state.records.get(incident_id, []) if a.revision >= revision and a.revision in revisions]
    if done:
        raise CommandError(f"revision {revision} of {incident_id} is already approved (revision {done[0].revision} "
                           f"by {done[0].approved_by} at {_iso(done[0].approved_at)}); nothing to do")
    hold = next((h for h in state.pending(incident_id) if h.revision == revision), None)
    if hold is None:
        raise CommandError(f"revision {revision} of {incident_id} is not held (it is within the approval limits); "
                           "nothing to approve")
    if hold.cost is None:
        raise CommandError(f"revision {revision} of {incident_id} is still being counted by the workers; "
                           "approve it once `makegood incident pending` shows its cost")
    return hold


def write_approval(settings: Settings, admission: Admission, state: HoldState, incident_id: str, revision: int,
                   approved_by: str, now_ms: int) -> tuple[Hold, IncidentApproval]:
    """Check the approval against `state` and write it to makegood.approvals.v1 (acknowledged)."""
    hold = check_approval(state, incident_id, revision)
    assert hold.cost is not None
    record = IncidentApproval(incident_id, revision, approved_by, now_ms, admission.policy.version,
                              hold.cost.remedies, hold.cost.won)
    try:
        validate_approval(record)
    except InvalidRecord as exc:
        raise CommandError(f"--by: {exc.reason}") from None
    topic = settings.topic(APPROVALS)
    producer = Producer(settings)
    try:
        if topic not in producer.list_topics(timeout=10).topics:
            raise CommandError(f"topic {topic} does not exist on {settings.bootstrap}; run `makegood topics create`")
        producer.send_batch_sync([(topic, incident_id.encode(),
                                   admission.codec.encode_obj("incident_approval", record), None)], 35)
    except ProduceError as exc:
        raise CommandError(f"the approval was not written to {topic}: {exc}") from None
    finally:
        producer.close(10)
    return hold, record
