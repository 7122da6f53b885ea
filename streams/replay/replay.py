"""Replay: re-run a range of an input topic through the worker's processors, against current state.

The range is read with a consumer of its own (assign(), a throw-away group id, nothing ever
committed), so a replay never moves the live workers' offsets. Each record is decoded and
validated exactly as the worker does; records that fail are counted and listed, not
dead-lettered again (the worker did that when they first arrived).

What "current state" means per topic — read from the topics themselves, not from the workers:
- every topic: all incident histories from outage.windows.v1, accepted as IncidentFeed does
  (a revision counts only if it is newer than the incident's latest);
- outage.windows.v1 range: the incidents named in the range, swept against the latest state of
  every entitlement on entitlement.states.v1 (newer updated_at wins, tombstones delete), as the
  worker's sweep does;
- entitlement.states.v1 range: each record decided against every incident as the worker's agent
  does on arrival: skipped when older than the state the agent held for that key (earlier
  records of the range's keys are read from the partition's start; tombstones delete), or when
  a newer state or a tombstone of the key follows it, in the range or after it (the worker's
  sweep decides an entitlement's latest state only, so a superseded one earns nothing);
- damage.reports.v1 range: each reporter's cases rebuilt by folding that key's earlier reports
  (from the topic's start up to the range) through triage_report without emitting, then the
  range's reports triaged; "already covered" comes from the ledger's user index, as live.

Outputs go through the emitter's own ordering (`emitter.batch_outputs`) so a replay produces the same
records, byte for byte, as the worker would have; only ids the ledger lacks are published.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

from processors.errors import InvalidRecord
from processors.model import (DamageReport, Decision, EntitlementState, Outcome, OutageWindow,
                              RemedyAction, Source)
from processors.policy import Policy
from processors.approval import report_incidents
from processors.reports import PENDING as WAITING, CaseState, locate_case, triage_report
from processors.validate import validate_key, validate_window
from processors.windows import IncidentHistory

from streams.wire.codec import DecodeError
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.decide.admit import Admission, Rejection
from streams.decide.entitlements import decide_all
from streams.decide.outputs import Batch, batch_outputs, encode_outputs
from streams.ledger.holds import gated
from streams.ledger.store import SyncLedger
from streams.kafka.producer import Producer
from streams.kafka.reader import PartitionReader, Raw, Span
from streams.progress import Progress
from streams.settings import Settings
from streams.kafka.topics import ACTIONS, ENTITLEMENTS, INPUT_TOPICS, OUTAGES, REPORTS
from streams.errors import ProduceError, ReadError, ReplayError, Stage

DEFAULT_MAX_RECORDS = 5_000_000
DELIVERY_TIMEOUT_S = 60.0
PUBLISH_CHUNK = 5000
_OFFSETS = re.compile(r"^(\d+):(\d+)-(\d+)$")


# ----------------------------------------------------------------------------- ranges

def parse_offsets(texts: Sequence[str]) -> list[tuple[int, int, int]]:
    """`P:A-B` (inclusive) as (partition, A, B); one line naming the bad one otherwise."""
    out: list[tuple[int, int, int]] = []
    for text in texts:
        m = _OFFSETS.match(text.strip())
        if m is None:
            raise ReplayError(f"--offsets: {text!r} is not PARTITION:FIRST-LAST (e.g. 0:100-199)")
        p, a, b = (int(g) for g in m.groups())
        if a > b:
            raise ReplayError(f"--offsets: {text!r} ends before it starts")
        if any(q == p for q, _, _ in out):
            raise ReplayError(f"--offsets: partition {p} given twice")
        out.append((p, a, b))
    return out


def by_time(reader: PartitionReader, real: str, from_ms: int, to_ms: int | None) -> list[Span]:
    """Per partition, from the first record stamped >= from_ms to the first stamped >= to_ms."""
    spans = []
    for p in reader.partitions(real):
        low, high = reader.watermarks(real, p)
        start = reader.offset_at(real, p, from_ms)
        end = high if to_ms is None else reader.offset_at(real, p, to_ms)
        spans.append(Span(p, max(low, start), end))
    return spans


def by_offsets(reader: PartitionReader, real: str, ranges: Sequence[tuple[int, int, int]],
               note: Callable[[str], None]) -> list[Span]:
    """The `--offsets` ranges, narrowed to the offsets present (and said so)."""
    known = set(reader.partitions(real))
    spans = []
    for p, first, last in ranges:
        if p not in known:
            raise ReplayError(f"--offsets: {real} has no partition {p} (it has {len(known)})")
        low, high = reader.watermarks(real, p)
        span = Span(p, max(first, low), min(last + 1, high))
        if (span.start, span.end) != (first, last + 1):
            note(f"partition {p}: {first}-{last} narrowed to the offsets present, "
                 f"{span.start}-{span.end - 1}" if len(span) else f"partition {p}: nothing in {first}-{last}")
        spans.append(span)
    return spans


# ----------------------------------------------------------------------------- events

@dataclass(frozen=True)
class Skipped:
    partition: int
    offset: int
    stage: Stage
    reason: str


@dataclass
class Events:
    """A range and the state it is decided against, decoded once and shared by every policy."""
    topic: str
    read: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)              # tombstones, stale states, ...
    windows: list[OutageWindow] = field(default_factory=list)    # the whole outage topic, in order
    incidents: set[str] = field(default_factory=set)             # named in a window range
    entitlements: list[tuple[EntitlementState, Source]] = field(default_factory=list)
    prior: list[tuple[bytes, DamageReport, Source]] = field(default_factory=list)
    reports: list[tuple[bytes, DamageReport, Source]] = field(default_factory=list)


def fold_histories(windows: Sequence[OutageWindow], policy: Policy) -> dict[str, IncidentHistory]:
    """IncidentFeed's accept rule over windows in topic order: valid and newer than the latest."""
    histories: dict[str, IncidentHistory] = {}
    for w in windows:
        try:
            validate_window(w, policy)
        except InvalidRecord:
            continue
        accepted = histories.get(w.incident_id, IncidentHistory()).accept(w)
        if accepted is not None:
            histories[w.incident_id] = accepted
    return histories


class Replay:
    def __init__(self, settings: Settings, policy: Policy, *, progress: bool = True) -> None:
        self.settings = settings
        self.policy = policy
        self.codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
        self.admission = Admission(self.codec, policy)
        self.reader = PartitionReader(settings, progress=progress)
        self.ledger = SyncLedger(settings)
        self._covered: dict[str, list[RemedyAction]] = {}

    def close(self) -> None:
        self.reader.close()

    def real(self, logical: str) -> str:
        return self.settings.topic(logical)

    def spans(self, topic: str, *, from_ms: int | None, to_ms: int | None,
              offsets: Sequence[tuple[int, int, int]], max_records: int,
              note: Callable[[str], None]) -> list[Span]:
        if topic not in INPUT_TOPICS:
            raise ReplayError(f"cannot replay {topic!r}; replay reads one of: {', '.join(INPUT_TOPICS)}")
        real = self.real(topic)
        try:
            spans = (by_offsets(self.reader, real, offsets, note) if offsets
                     else by_time(self.reader, real, from_ms or 0, to_ms))
        except ReadError as exc:
            raise ReplayError(str(exc)) from None
        total = sum(len(s) for s in spans)
        if total > max_records:
            raise ReplayError(f"the range holds {total:,} records, more than --max-records {max_records:,}; "
                              "narrow it or raise the limit")
        return spans

    # ------------------------------------------------------------------ reading

    def _decode(self, schema: str, raw: Raw, events: Events | None) -> object | None:
        """The record, admitted as the worker admits it; None (listed in `events` if given) otherwise."""
        got = self.admission.check(schema, raw.value, raw.key)
        if isinstance(got, Rejection):
            if events is not None:
                events.skipped.append(Skipped(raw.partition, raw.offset, got.stage, got.reason))
            return None
        return got

    def load(self, topic: str, spans: Sequence[Span]) -> Events:
        ev = Events(topic)
        self._load_windows(ev, spans if topic == OUTAGES else None)
        if topic == ENTITLEMENTS:
            self._load_entitlements(ev, spans)
        elif topic == OUTAGES:
            ev.entitlements = self._latest_entitlements()
        else:
            self._load_reports(ev, spans)
        return ev

    def _load_windows(self, ev: Events, range_spans: Sequence[Span] | None) -> None:
        real = self.real(OUTAGES)
        label = f"replaying {OUTAGES}" if range_spans is not None else f"reading {OUTAGES} (incidents)"
        in_range = {s.partition: s for s in range_spans or ()}
        for raw in self.reader.read(real, self.reader.whole(real), label):
            span = in_range.get(raw.partition)
            if span is not None and span.start <= raw.offset < span.end:
                ev.read += 1
                valid = self._decode("outage_window", raw, ev)
                if isinstance(valid, OutageWindow):
                    ev.incidents.add(valid.incident_id)
            try:
                window = self.codec.decode_obj("outage_window", raw.value)
                validate_key(window, raw.key)
            except (DecodeError, InvalidRecord):
                continue
            ev.windows.append(window)   # fold_histories validates it under the policy it runs

    def _latest_entitlements(self) -> list[tuple[EntitlementState, Source]]:
        real = self.real(ENTITLEMENTS)
        latest: dict[bytes, tuple[EntitlementState, Source]] = {}
        for raw in self.reader.read(real, self.reader.whole(real), f"reading {ENTITLEMENTS} (state)"):
            if raw.value is None:
                latest.pop(raw.key or b"", None)
                continue
            ent = self._decode("entitlement_state", raw, None)
            if not isinstance(ent, EntitlementState):
                continue
            k = ent.entitlement_id.encode()
            held = latest.get(k)
            if held is None or held[0].updated_at <= ent.updated_at:
                latest[k] = (ent, Source(real, raw.partition, raw.offset))
        return list(latest.values())

    def _before(self, real: str, spans: Sequence[Span]) -> list[Span]:
        """From each partition's first offset up to where the range starts."""
        return [Span(s.partition, self.reader.watermarks(real, s.partition)[0], s.start)
                for s in spans if len(s)]

    def _after(self, real: str, spans: Sequence[Span]) -> list[Span]:
        """From where the range ends to each partition's end."""
        return [Span(s.partition, s.end, self.reader.watermarks(real, s.partition)[1]) for s in spans if len(s)]

    def _load_entitlements(self, ev: Events, spans: Sequence[Span]) -> None:
        """The range's states that the worker's agent would decide: not older than one it held."""
        real = self.real(ENTITLEMENTS)
        rng: list[tuple[Raw, EntitlementState | None]] = []
        for raw in self.reader.read(real, spans, f"replaying {ENTITLEMENTS}"):
            ev.read += 1
            ent = self._decode("entitlement_state", raw, ev) if raw.value is not None else None
            if raw.value is None:
                ev.notes["tombstones"] += 1
            if raw.value is None or isinstance(ent, EntitlementState):
                rng.append((raw, ent))
        keys = {raw.key or b"" for raw, _ in rng} | {e.entitlement_id.encode() for _, e in rng if e}
        held: dict[bytes, int] = {}        # the agent's table: key -> updated_at of the stored state
        for raw in self.reader.read(real, self._before(real, spans), f"reading {ENTITLEMENTS} (earlier states)"):
            if (raw.key or b"") in keys:
                self._hold(held, raw, self._decode("entitlement_state", raw, None) if raw.value else None)
        latest: dict[bytes, tuple[EntitlementState, Source]] = {}
        for raw, ent in rng:
            if self._hold(held, raw, ent) and ent is not None:
                self._supersede(latest, ent.entitlement_id.encode(), ev)
                latest[ent.entitlement_id.encode()] = (ent, Source(real, raw.partition, raw.offset))
            elif ent is not None:
                ev.notes["stale states"] += 1
            else:                           # a tombstone
                self._supersede(latest, raw.key or b"", ev)
        for raw in self.reader.read(real, self._after(real, spans), f"reading {ENTITLEMENTS} (later states)"):
            if (raw.key or b"") in latest and (raw.value is None or self._hold(
                    held, raw, self._decode("entitlement_state", raw, None))):
                self._supersede(latest, raw.key or b"", ev)
        ev.entitlements.extend(sorted(latest.values(), key=lambda es: (es[1].partition, es[1].offset)))

    @staticmethod
    def _supersede(latest: dict[bytes, tuple[EntitlementState, Source]], key: bytes, ev: Events) -> None:
        if latest.pop(key, None) is not None:
            ev.notes["superseded states"] += 1

    @staticmethod
    def _hold(held: dict[bytes, int], raw: Raw, ent: object) -> bool:
        """The agent's store rule: a tombstone deletes; an older state than the one held is skipped."""
        if raw.value is None:
            held.pop(raw.key or b"", None)
            return False
        if not isinstance(ent, EntitlementState):
            return False
        k = ent.entitlement_id.encode()
        if held.get(k, ent.updated_at) > ent.updated_at:
            return False
        held[k] = ent.updated_at
        return True

    def _load_reports(self, ev: Events, spans: Sequence[Span]) -> None:
        real = self.real(REPORTS)
        for raw in self.reader.read(real, spans, f"replaying {REPORTS}"):
            ev.read += 1
            report = self._decode("damage_report", raw, ev)
            if isinstance(report, DamageReport):
                ev.reports.append((raw.key or b"", report, Source(real, raw.partition, raw.offset)))
        keys = {k for k, _, _ in ev.reports}
        before = self._before(real, spans)
        for raw in self.reader.read(real, before, f"reading {REPORTS} (earlier reports)"):
            if (raw.key or b"") not in keys:
                continue
            report = self._decode("damage_report", raw, None)
            if isinstance(report, DamageReport):
                ev.prior.append((raw.key or b"", report, Source(real, raw.partition, raw.offset)))

    # ------------------------------------------------------------------ deciding

    def covered(self, user_id: str) -> list[RemedyAction]:
        if user_id not in self._covered:
            try:
                rows = self.ledger.user_remedies(user_id)
            except Exception as exc:  # redis errors: one line, not a traceback
                raise ReplayError(f"cannot read the ledger at {self.settings.redis_address}: {exc}") from None
            self._covered[user_id] = [self.codec.decode_obj("remedy_action", raw) for raw in rows]
        return self._covered[user_id]

    def decide(self, ev: Events, policy: Policy) -> tuple[list[Decision], Counter]:
        """Every decision `policy` makes for the range; outcomes counted by name."""
        # decided against the released revisions only (processors.approval): a replay never issues a held one
        raw, histories, held = gated(self.settings, Admission(self.codec, policy), fold_histories(ev.windows, policy))
        decisions: list[Decision] = []
        outcomes: Counter = Counter()
        if ev.topic in (OUTAGES, ENTITLEMENTS):
            against = ([h for i, h in histories.items() if i in ev.incidents] if ev.topic == OUTAGES
                       else list(histories.values()))
            for ent, source in ev.entitlements:
                for d in decide_all(policy, against, ent, source):
                    outcomes[d.outcome] += 1
                    if d.remedies or d.notices:
                        decisions.append(d)
            return decisions, outcomes
        cases: dict[bytes, dict[str, CaseState]] = defaultdict(dict)
        for key, report, source in ev.prior:      # fold: state only, nothing emitted
            self._triage(policy, report_incidents(raw, held, report), report, source, cases[key])
        for key, report, source in ev.reports:
            d = self._triage(policy, report_incidents(raw, held, report), report, source, cases[key])
            outcomes[d.outcome] += 1
            decisions.append(d)
        return decisions, outcomes

    def _triage(self, policy: Policy, histories: dict[str, IncidentHistory] | None, report: DamageReport,
                source: Source, cases: dict[str, CaseState]) -> Decision:
        """The worker's `_triage`: locate the case, triage, keep the case unless still pending
        (or waiting for a held revision: `histories` None)."""
        if histories is None:
            return WAITING
        cid = locate_case(histories, report)
        case = cases.get(cid) if cid else None
        covered = self.covered(report.reporter_id) if cid else []
        decision, new_case = triage_report(policy, histories, report, source, case, covered)
        if decision.outcome is not Outcome.PENDING and new_case is not None:
            cases[new_case.case_id] = new_case
        return decision

    # ------------------------------------------------------------------ outputs

    def outputs(self, decisions: list[Decision]) -> tuple[list[tuple[str, str, bytes, bytes]], list[RemedyAction]]:
        """(id, logical topic, key, value) in the emitter's order, once per id, and the remedies."""
        records, _ = encode_outputs(self.codec, batch_outputs(Batch(decisions=decisions)))
        remedies = list({r.remedy_id: r for d in decisions for r in d.remedies}.values())
        return records, remedies

    def issued(self, ids: Sequence[str]) -> set[str]:
        try:
            return self.ledger.issued(ids)
        except Exception as exc:  # redis errors: one line, not a traceback
            raise ReplayError(f"cannot read the ledger at {self.settings.redis_address}: {exc}") from None

    def publish(self, records: Sequence[tuple[str, str, bytes, bytes]], *, progress: bool = True) -> int:
        """Produce, await every ack, then ledger — chunk by chunk, as the emitter does."""
        producer = Producer(self.settings, **{"linger.ms": 20,
                                              "message.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000)})
        done = 0
        try:
            with Progress(len(records), "publishing", enabled=progress) as prog:
                for i in range(0, len(records), PUBLISH_CHUNK):
                    chunk = records[i:i + PUBLISH_CHUNK]
                    try:
                        producer.send_batch_sync([(self.real(topic), key, value, None)
                                                  for _, topic, key, value in chunk], DELIVERY_TIMEOUT_S + 5)
                    except ProduceError as exc:
                        raise ReplayError(f"{exc}; {done} published and ledgered before that; the ledger "
                                          "has no entry for the rest, so running the replay again is safe") from None
                    ids = [c[0] for c in chunk]
                    try:
                        self.ledger.record(ids, [(key.decode(), oid, value) for oid, topic, key, value in chunk
                                                 if topic == ACTIONS])
                    except Exception as exc:
                        raise ReplayError(f"records were published but the ledger write failed ({exc}); "
                                          "run `makegood ledger rebuild`") from None
                    done += len(chunk)
                    prog.advance(len(chunk))
        finally:
            producer.close()
        return done
