"""Damage reports: each batch the reports group consumer hands over, triaged against the incidents.

A report is matched to an incident (by incident_id, or by service and time inside a window) and
triaged with its reporter's case (processors.reports): a tier payout, a top-up, a review case
or a notice. A reporter's reports are triaged in arrival order; one whose incident is not known
yet waits in the reporter's entry (worker.cases) and is re-triaged, in order, when a window
arrives: the sweeper sends a re-triage request through makegood.retriage.v1, which is
co-partitioned with the reports, so the request reaches the worker that owns the entry.

A batch's outputs, its changed reporter entries and its offsets are committed in one
transaction, so after any crash or take-over the entries, the offsets and what billing sees
agree: nothing needs re-reading to find reports that fell between them.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from confluent_kafka import Message

from processors.decisions import decide_review
from processors.errors import UnknownCase
from processors.model import DamageReport, Outcome, RemedyAction, ReviewDecision, Source
from processors.reports import PENDING as WAITING, locate_case, triage_report

from streams.decide.admit import Admission, Rejection
from streams.decide.outputs import Batch, DeadLetter, Intake
from streams.errors import RegistryUnavailable, Stage
from streams.kafka.reader import PartitionReader
from streams.kafka.topics import DECISIONS, REPORTS, RETRIAGE
from streams.ledger.store import Ledger
from streams.settings import Settings
from streams.worker.cases import Cases, Touched, case_from_json, case_to_json, pending_entry, read_cases
from streams.worker.consumer import GroupConsumer
from streams.worker.emitter import Emitter
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.retry import retry_forever

log = logging.getLogger(__name__)


class ReportsHandler:
    def __init__(self, settings: Settings, admission: Admission, cases: Cases, feed: IncidentFeed,
                 emitter: Emitter, ledger: Ledger, gate: Gate, ready: Any, on_assigned: Callable[[], None]):
        self.settings = settings
        self.admission = admission
        self.codec = admission.codec
        self.cases = cases
        self.feed = feed
        self.emitter = emitter
        self.ledger = ledger
        self.gate = gate
        self._ready = ready                   # the sweeper's catch-up after an assignment is done
        self._on_assigned = on_assigned       # the sweeper's catch-up request
        self.owned: set[int] = set()          # report partitions this worker owns
        self.retriage_topic = settings.topic(RETRIAGE)
        self.decisions_topic = settings.topic(DECISIONS)
        self._remedies_of: dict[str, list[bytes]] = {}   # reporter -> ledgered remedies, per batch

    # ------------------------------------------------------------------ assignment

    def restore(self, partitions: set[int], committed: dict[tuple[str, int], int]) -> dict[bytes, bytes]:
        """The reporter entries of `partitions`, read back from the changelog (consumer thread)."""
        with PartitionReader(self.settings) as reader:
            return read_cases(reader, self.cases.topic, partitions)

    async def assigned(self, parts: set[int], kept: set[int], restored: dict[bytes, bytes] | None) -> None:
        restored = restored or {}
        async with self.gate.exclusive():
            self.cases.assign(kept, restored)
            self.owned = set(parts)
        log.info("assigned report partitions %s (kept %s, %d reporter entries restored)",
                 sorted(parts), sorted(kept), len(restored))
        self._on_assigned()

    async def revoked(self, parts: set[int]) -> None:
        async with self.gate.exclusive():
            self.owned -= parts

    # ------------------------------------------------------------------ batches

    async def handle(self, msgs: list[Message], consumer: GroupConsumer) -> None:
        """One batch of reports and re-triage requests (offset order per partition); returns
        once it is committed and ledgered (GroupFenced: dropped, the group moved on)."""
        await self._ready.wait()
        batch = Batch()
        touched: Touched = {}
        async with self.gate.exclusive():
            owned = self.owned
            mine = [m for m in msgs if m.partition() in owned]    # others: revoked while in hand
            await self._prefetch_remedies(m.key().decode("utf-8", "replace") for m in mine if m.key())
            for m in mine:
                key = m.key() or b""
                source = Source(m.topic(), m.partition(), m.offset())
                try:
                    if m.topic() == self.retriage_topic:
                        batch.outcomes[Intake.RETRIAGE] += 1
                        new = []
                    elif m.topic() == self.decisions_topic:
                        decision = self.admission.check("review_decision", m.value(), m.key())
                        if isinstance(decision, Rejection):
                            batch.fail(DeadLetter.of(source, m.key(), m.value(), decision))
                            continue
                        doc = self.cases.doc(key, m.partition(), touched)
                        if self.decide(decision, source, doc, batch, m.key(), m.value()):
                            touched[key] = (m.partition(), doc)
                        continue
                    else:
                        report = self.admission.check("damage_report", m.value(), m.key())
                        if isinstance(report, Rejection):
                            batch.fail(DeadLetter.of(source, m.key(), m.value(), report))
                            continue
                        new = [(m.value(), source, report)]
                    doc = self.cases.doc(key, m.partition(), touched)
                    await self._triage_in_order(doc, new, batch)
                    touched[key] = (m.partition(), doc)
                except RegistryUnavailable:
                    raise                      # not the record's fault: the batch waits (worker.consumer)
                except Exception as exc:
                    log.exception("report at %s/%s@%s failed", m.topic(), m.partition(), m.offset())
                    batch.fail(DeadLetter(source, m.key(), m.value(), Stage.PROCESS, type(exc).__name__, str(exc)))
            self._remedies_of = {}       # read again for the next batch: the ledger moves on
            commit = consumer.commit_for(mine, owned)
            await self.emitter.emit(batch, outcome_topic=REPORTS, commit=commit, also=self.cases.changes(touched))
            self.cases.apply(touched)
            consumer.committed(commit[0])

    async def _triage_in_order(self, doc: dict, new: list, batch: Batch) -> None:
        """A reporter's reports are triaged in arrival order: earlier ones still waiting for
        their incident go first, so amendments stay amendments."""
        queue = [(bytes.fromhex(p["raw"]), Source(*p["source"]), None) for p in doc["pending"]] + new
        doc["pending"] = []
        for raw, source, report in queue:
            if report is None:
                report = self.codec.decode_obj("damage_report", raw)
            await self.triage(report, raw, source, doc, batch)

    async def triage(self, report: DamageReport, raw: bytes, source: Source, doc: dict, batch: Batch) -> None:
        histories = self.feed.for_report(report)
        if histories is None:           # about a held revision (processors.approval): waits with it
            doc["pending"].append(pending_entry(raw, source, report.report_id))
            batch.add(WAITING)
            return
        cid = locate_case(histories, report)
        case = case_from_json(doc["cases"][cid]) if cid and cid in doc["cases"] else None
        covered = await self._covered(report.reporter_id) if cid else []
        decision, new_case = triage_report(self.admission.policy, histories, report, source, case, covered)
        if decision.outcome is Outcome.PENDING:
            doc["pending"].append(pending_entry(raw, source, report.report_id))
        else:
            doc.setdefault("seen", []).append(report.report_id)
            if new_case is not None:
                doc["cases"][new_case.case_id] = case_to_json(new_case)
        batch.add(decision)

    def decide(self, d: ReviewDecision, source: Source, doc: dict, batch: Batch, key: bytes | None,
               value: bytes | None) -> bool:
        """A reviewer's decision on one of the reporter's cases (processors.decisions); a
        decision for a case the reporter does not have is a dead letter. True: `doc` changed."""
        case = doc["cases"].get(d.case_id)
        try:
            decision, new_case = decide_review(self.admission.policy, case_from_json(case) if case else None,
                                               d, source)
        except UnknownCase as exc:
            batch.fail(DeadLetter(source, key, value, Stage.VALIDATE, type(exc).__name__, exc.reason))
            return False
        doc["cases"][new_case.case_id] = case_to_json(new_case)
        batch.add(decision)
        return True

    async def _covered(self, user_id: str) -> list[RemedyAction]:
        """The remedies the ledger holds for a reporter (prefetched for the batch in hand)."""
        rows = self._remedies_of.get(user_id)
        if rows is None:
            rows = await retry_forever("ledger read", lambda: self.ledger.user_remedies(user_id))
        return [self.codec.decode_obj("remedy_action", raw) for raw in rows]

    async def _prefetch_remedies(self, user_ids: Iterable[str]) -> None:
        """One Redis round trip for the reporters of a batch instead of one per report. Safe
        because the ledger only changes when this worker emits, at the end of the batch (or
        another worker does, for users it decided: the same as reading a moment earlier)."""
        ids = sorted(set(user_ids))
        self._remedies_of = await retry_forever("ledger read", lambda: self.ledger.users_remedies(ids)) if ids else {}

    # ------------------------------------------------------------------ sweeper requests

    async def retriage_waiting(self) -> None:
        """Ask for a re-triage of the reporters whose reports wait for an incident."""
        await self.emitter.send([(self.retriage_topic, key, b"", partition)
                                 for key, partition in self.cases.waiting(self.owned)])
