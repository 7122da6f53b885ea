"""Damage reports: the faust `reports` agent's batches, triaged against the known incidents.

A report is matched to an incident (by incident_id, or by service and time inside a window) and
triaged with its reporter's case (processors.reports): a tier payout, a top-up, a review case
or a notice. A reporter's reports are triaged in arrival order; one whose incident is not known
yet waits in the reporter's entry of the `cases` table and is re-triaged, in order, when a
window arrives (the sweeper sends a re-triage request through makegood.retriage.v1, which is
co-partitioned with the reports, so the request reaches the agent that owns the entry).

Catch-up on assignment: the input topic, not faust's offsets, is the truth. faust at_least_once
can commit an offset whose event never finished (faust #606 and its relatives), and a stream
taking over partitions can start past events nobody processed (seen in the fault suite: a new
owner's first batch began 15 records into partitions with no committed offset, and its commits
then passed them). So a worker that is assigned report partitions re-reads them from the
beginning up to their end offsets at that moment and triages every report its reporter's entry
has not seen. The agent may triage some of the same reports meanwhile: a report its case
already holds is a DUPLICATE, and ids already in the ledger are dropped by the emitter, so the
repeated work is harmless.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from processors.model import DamageReport, Outcome, RemedyAction, Source
from processors.reports import locate_case, triage_report

from streams.decide.admit import Admission, Rejection
from streams.decide.outputs import Batch, DeadLetter, Intake
from streams.errors import Stage
from streams.kafka.reader import PartitionReader, Span, read_async
from streams.kafka.topics import REPORTS, RETRIAGE
from streams.ledger.store import Ledger
from streams.settings import Settings
from streams.worker.cases import Cases, Touched, case_from_json, case_to_json, has_seen, pending_entry
from streams.worker.emitter import Emitter
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.retry import retry_forever

log = logging.getLogger(__name__)


class ReportsHandler:
    def __init__(self, settings: Settings, admission: Admission, cases: Cases, feed: IncidentFeed,
                 emitter: Emitter, ledger: Ledger, gate: Gate, ready: Any):
        self.settings = settings
        self.admission = admission
        self.codec = admission.codec
        self.cases = cases
        self.feed = feed
        self.emitter = emitter
        self.ledger = ledger
        self.gate = gate
        self._ready = ready                   # the sweeper's catch-up after an assignment is done
        self.owned: set[int] = set()          # report partitions this worker owns
        self.topic = settings.topic(REPORTS)
        self.retriage_topic = settings.topic(RETRIAGE)
        self._remedies_of: dict[str, list[bytes]] = {}   # reporter -> ledgered remedies, per batch

    # ------------------------------------------------------------------ live batches

    async def handle(self, events: list) -> None:
        """One batch of the agent's events (reports and re-triage requests, offset order)."""
        await self._ready.wait()
        batch = Batch()
        touched: Touched = {}
        async with self.gate.exclusive():
            await self._prefetch_remedies(ev.key.decode("utf-8", "replace") for ev in events if ev.key)
            for ev in events:
                m = ev.message
                key = ev.key or b""
                source = Source(m.topic, m.partition, m.offset)
                try:
                    if m.topic == self.retriage_topic:
                        batch.outcomes[Intake.RETRIAGE] += 1
                        new = []
                    else:
                        report = self.admission.check("damage_report", ev.value, ev.key)
                        if isinstance(report, Rejection):
                            batch.fail(DeadLetter.of(source, ev.key, ev.value, report))
                            continue
                        new = [(ev.value, source, report)]
                    doc = self.cases.doc(key, m.partition, touched)
                    await self._triage_in_order(doc, new, batch)
                    touched[key] = (m.partition, doc)
                except Exception as exc:
                    log.exception("report at %s/%s@%s failed", m.topic, m.partition, m.offset)
                    batch.fail(DeadLetter(source, ev.key, ev.value, Stage.PROCESS, type(exc).__name__, str(exc)))
            self._remedies_of = {}       # read again for the next batch: the ledger moves on
            # outputs first, then the case: a stored case marks its reports as done
            await self.emitter.emit(batch, outcome_topic=REPORTS)
            await self._store(touched)

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
        histories = self.feed.histories
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

    async def _store(self, touched: Touched) -> None:
        """Store changed reporter entries and write them to the table's changelog in one batch."""
        records = self.cases.store(touched)
        if records:
            assert self.emitter.producer is not None
            await retry_forever("cases changelog", lambda: self.emitter.producer.send_batch(records))

    # ------------------------------------------------------------------ sweeper requests

    async def retriage_waiting(self) -> None:
        """Ask the agent to re-triage reporters whose reports wait for an incident."""
        sends = [(self.retriage_topic, key, b"", partition) for key, partition in self.cases.waiting(self.owned)]
        assert self.emitter.producer is not None
        await self.emitter.producer.send_batch(sends)

    async def catch_up(self) -> int:
        """Triage every report of the owned partitions that its reporter's entry has not seen."""
        partitions = set(self.owned)
        topic = self.topic

        def plan(reader: PartitionReader) -> list[Span]:
            # up to the end, not the group's committed offsets: the agent can skip events above
            # those too (module docstring)
            return [span for span in reader.whole(topic) if span.partition in partitions]

        triaged = 0
        async for msgs in read_async(self.settings, topic, plan):
            batch = Batch()
            touched: Touched = {}
            async with self.gate.exclusive():
                for m in msgs:
                    key = m.key or b""
                    report = self.admission.valid("damage_report", m.value, m.key)
                    if report is None:
                        continue
                    doc = self.cases.doc(key, m.partition, touched)
                    if has_seen(doc, report.report_id):
                        continue
                    await self.triage(report, m.value, Source(topic, m.partition, m.offset), doc, batch)
                    touched[key] = (m.partition, doc)
                    triaged += 1
                if touched:
                    await self.emitter.emit(batch)
                    await self._store(touched)
        log.info("catch-up of report partitions %s: %d reports triaged", sorted(partitions), triaged)
        return triaged
