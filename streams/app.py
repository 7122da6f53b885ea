"""The live pipeline on faust: `create_app(settings)` builds a fresh worker (no module-level app).

Flow inside one worker:
- IncidentFeed reads every outage window (own group-less consumer) into `histories`.
- StateConsumer (states.py) reads entitlement states in batches in its own consumer group,
  stores each in the worker's StateStore and decides it against every known incident on arrival
  (an entitlement published after its window closed). Not a faust agent: faust's per-message
  path caps ingest far below what the topic needs (states.py says why).
- A window revision wakes the sweeper, which re-decides every stored entitlement of the
  partitions *this* worker owns — the sweep scales out with the consumer group — and asks the
  `reports` agent (through makegood.retriage.v1, co-partitioned with the reports) to re-triage
  reports that were waiting for an incident.
- Every decision goes through the Emitter: ledger check, produce, ack, ledger write.

faust caveats designed around: the reports agent runs with concurrency=1 (issue #606 skips offsets
otherwise); processing_guarantee stays at_least_once (exactly_once has open duplicate/fencing
bugs) and the Redis ledger makes re-processing harmless; no exception may escape an agent body
(faust would ack the event anyway), so poison records become dead letters and I/O failures are
retried in place.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import logging
import time
from typing import Any, AsyncIterator, Iterable, Sequence

import faust

from processors.errors import InvalidRecord
from processors.model import DamageReport, EntitlementState, OutageWindow, RemedyAction, Source
from processors.policy import Policy, load_policy
from processors.reports import locate_case, triage_report
from processors.entitlements import decide_entitlement
from processors.validate import validate_entitlement, validate_report

from .catchup import reconcile_inflight, retriage_unseen_reports
from .codec import Codec, DecodeError
from .emitter import Batch, DeadLetter, Emitter, retry_forever
from .faust_fetch import shorten_fetch_wait
from .incidents import IncidentFeed
from .ledger import Ledger
from .settings import Settings
from .states import StateConsumer, StateStore
from .sweeppool import SweepPool, decide_stored
from .tables import (Touched, case_doc, case_from_json, case_to_json, entitlement_header,
                     pending_entry, store_case_docs)
from .topics import ENTITLEMENTS, OUTAGES, REPORTS, RETRIAGE, load_topic_specs

log = logging.getLogger(__name__)

SWEEP_CHUNK = 2000
SWEEP_SLICE = 250       # entitlements decided between two turns of the event loop


class Pipeline:
    """One worker: the faust app plus the resources its agents share."""

    def __init__(self, settings: Settings, policy: Policy | None = None):
        self.settings = settings
        self.policy = policy or load_policy(str(settings.policy_path))
        self.codec = Codec.from_dir(settings.schemas_dir)
        self.ledger = Ledger(settings)
        self.emitter = Emitter(settings, self.codec, self.ledger)
        self.specs = load_topic_specs(settings.topics_file)
        self.feed = IncidentFeed(settings, self.codec, self.policy, self._on_window,
                                 self.specs[OUTAGES].partitions)
        self.owned: dict[str, set[int]] = {ENTITLEMENTS: set(), REPORTS: set()}
        self.states = StateStore(self.codec, self.policy, validate_entitlement)
        self.sweep_pool = (SweepPool(settings.sweep_processes, settings.schemas_dir, self.policy)
                           if settings.sweep_processes > 0 else None)
        self.state_consumer = StateConsumer(settings, self.states, self._on_states_assigned,
                                            self._on_states_revoked, self.handle_entitlements)
        self.lock = asyncio.Lock()          # decisions and ledger writes of this worker, one at a time
        self._emitting: asyncio.Future | None = None   # a sweep chunk's emit, still running
        self.sweep_wanted = asyncio.Event()   # wakes the sweeper (window change, assignment, dead letters)
        self.sweep_due = False                # a full sweep is owed (not just dead letters to flush)
        self.catch_up_due = False             # partitions were assigned: reconcile in-flight marks first
        self.retriage_due = False             # report partitions were assigned: triage unseen reports
        self.assignment_ready = asyncio.Event()  # set once in-flight marks of others are reconciled
        self.sweeps_done = 0
        self._remedies_of: dict[str, list[bytes]] = {}   # reporter -> ledgered remedies, per report batch
        self.app = self._build_app()

    # ------------------------------------------------------------------ faust wiring

    def _build_app(self) -> faust.App:
        shorten_fetch_wait()
        s = self.settings
        n_rep = self.specs[REPORTS].partitions
        app = faust.App(
            s.topic("makegood"), broker=f"kafka://{s.bootstrap}", store="memory://",
            web_enabled=False, datadir=str(s.state_dir / "workers" / s.worker_id),
            topic_partitions=n_rep, topic_replication_factor=1, table_standby_replicas=0,
            processing_guarantee="at_least_once", consumer_auto_offset_reset="earliest",
            broker_session_timeout=10, broker_heartbeat_interval=1, broker_rebalance_timeout=10,
            broker_commit_every=2000, broker_commit_interval=1.0, stream_buffer_maxsize=8192,
            producer_acks=-1, producer_linger=0.005, autodiscover=False,
        )
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        report_topics = app.topic(s.topic(REPORTS), s.topic(RETRIAGE), partitions=n_rep, **raw)
        self.cases = app.Table("cases", key_type=bytes, value_type=bytes, partitions=n_rep)

        # Reports (and entitlement states, in _run_services) wait for the incident feed to catch
        # up, so that nothing is decided against a partial history (it would be right
        # eventually, but reports would lose their order).
        async def reports(stream):
            await self.feed.caught_up.wait()
            async for events in stream.take_events(500, within=0.02):
                await self.handle_reports(events)

        app.agent(report_topics, name="reports", concurrency=1)(reports)
        app.task(self._run_services)
        app.on_partitions_assigned.connect(self._on_assigned)
        app.on_partitions_revoked.connect(self._on_revoked)
        app.pipeline = self  # handy for tests and tools
        return app

    async def _run_services(self, app: Any = None) -> None:
        await self.emitter.start()
        if self.sweep_pool is not None:
            await self.sweep_pool.start()
        feed = asyncio.ensure_future(self.feed.run())
        sweeper = asyncio.ensure_future(self._sweeper())
        states = asyncio.ensure_future(self._consume_states())
        tasks = (feed, sweeper, states)
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._emitting is not None:      # a sweep chunk's records: ledger them before stopping
                await asyncio.wait([self._emitting], timeout=30)
            if self.sweep_pool is not None:
                self.sweep_pool.close()
            await self.emitter.stop()
            await self.ledger.close()

    async def _consume_states(self) -> None:
        await self.feed.caught_up.wait()
        await self.state_consumer.run()

    def _partitions(self, tps: Iterable[Any], logical: str) -> set[int]:
        name = self.settings.topic(logical)
        return {tp.partition for tp in tps if tp.topic == name}

    def _catch_up(self) -> None:
        """Whatever happened to newly assigned partitions before (a worker killed mid-batch,
        events committed but never processed), catch up first: see catchup.py."""
        self.catch_up_due = True
        self.assignment_ready.clear()
        self.sweep_due = True
        self.sweep_wanted.set()

    async def _on_assigned(self, app: Any, assigned: Iterable[Any], **kw: Any) -> None:
        self.owned[REPORTS] = self._partitions(list(assigned), REPORTS)
        log.info("assigned report partitions %s", sorted(self.owned[REPORTS]))
        self.retriage_due = True
        self._catch_up()

    async def _on_revoked(self, app: Any, revoked: Iterable[Any], **kw: Any) -> None:
        self.owned[REPORTS] -= self._partitions(list(revoked), REPORTS)

    async def _on_states_assigned(self, parts: set[int], kept: set[int], restored: dict[bytes, bytes]) -> None:
        async with self.exclusive():
            dropped = self.states.drop_partitions(set(range(self.specs[ENTITLEMENTS].partitions)) - kept)
            self.states.data.update(restored)
            self.owned[ENTITLEMENTS] = set(parts)
        log.info("assigned entitlement partitions %s (kept %s, %d states restored from the topic, %d dropped)",
                 sorted(parts), sorted(kept), len(restored), dropped)
        self._catch_up()

    async def _on_states_revoked(self, parts: set[int]) -> None:
        async with self.exclusive():
            self.owned[ENTITLEMENTS] -= parts

    def _on_window(self, window: OutageWindow | None) -> None:
        """The feed accepted a revision (window) or queued a dead letter (None)."""
        if window is not None:
            self.sweep_due = True
        self.sweep_wanted.set()

    # ------------------------------------------------------------------ decisions

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """The lock, with every earlier decision of this worker ledgered: a sweep leaves its
        last chunk's emit running when it lets go of the lock (see sweep)."""
        async with self.lock:
            await self.settle()
            yield

    async def settle(self) -> int:
        """Wait for the sweep's emit in flight, if any; returns how many records it produced."""
        pending, self._emitting = self._emitting, None
        return await pending if pending is not None else 0

    def _decode(self, schema: str, source: Source, key: bytes | None, value: bytes | None,
                batch: Batch) -> Any:
        """The validated record, or None after adding a dead letter to the batch."""
        try:
            record = self.codec.decode_obj(schema, value)
            if schema == "entitlement_state":
                validate_entitlement(record, self.policy)
            else:
                validate_report(record, self.policy)
            return record
        except DecodeError as exc:
            batch.fail(DeadLetter(source, key, value, "DECODE", type(exc).__name__, exc.reason))
        except InvalidRecord as exc:
            batch.fail(DeadLetter(source, key, value, "VALIDATE", type(exc).__name__, str(exc)))
        return None

    def decide_entitlement_all(self, ent: EntitlementState, source: Source, batch: Batch) -> None:
        decided = False
        for history in self.feed.histories.values():
            d = decide_entitlement(self.policy, history, ent, source)
            if d.remedies or d.notices:
                batch.decisions.append(d)
            decided = True
        batch.outcomes["decided" if decided else "stored-no-incident"] += 1

    async def handle_entitlements(self, msgs: list) -> None:
        """One batch of entitlement.states.v1 records (confluent-kafka Messages, offset order)."""
        await self.assignment_ready.wait()
        batch = Batch()
        store = self.states
        async with self.exclusive():
            owned = self.owned[ENTITLEMENTS]
            for m in msgs:
                key, value, partition, offset = m.key(), m.value(), m.partition(), m.offset()
                source = Source(m.topic(), partition, offset)
                if partition not in owned:      # revoked while this batch was in hand
                    continue
                try:
                    if value is None:  # tombstone: the entitlement is gone; issued remedies stand
                        if key is not None:
                            store.data.pop(key, None)
                        batch.outcomes["tombstone"] += 1
                        continue
                    ent = self._decode("entitlement_state", source, key, value, batch)
                    if ent is None:
                        continue
                    k = ent.entitlement_id.encode()
                    if store.is_stale(k, ent.updated_at):
                        batch.outcomes["stale"] += 1   # newer state already stored: newer wins
                        continue
                    store.put(k, partition, offset, ent.updated_at, value)
                    self.decide_entitlement_all(ent, source, batch)
                except Exception as exc:  # a processor bug must not stop the pipeline
                    log.exception("entitlement at %s/%s@%s failed", source.topic, partition, offset)
                    batch.fail(DeadLetter(source, key, value, "PROCESS", type(exc).__name__, str(exc)))
            await self.emitter.emit(batch, outcome_topic=ENTITLEMENTS)

    # ------------------------------------------------------------------ sweeps

    async def _sweeper(self) -> None:
        await self.feed.caught_up.wait()
        # Everything faust, aiokafka and the libraries built at start-up lives as long as the
        # worker: keep it out of the cyclic GC's full collections, which otherwise walked it
        # all every few seconds under load (54-91 ms pauses at 1,000 reports/s, measured with
        # gc.callbacks), straight into report latency.
        gc.freeze()
        while True:
            await self.sweep_wanted.wait()
            self.sweep_wanted.clear()
            dead = self.feed.dead
            if dead:
                self.feed.dead = []
                b = Batch(dead=dead)
                async with self.exclusive():
                    await self.emitter.emit(b)
            if self.catch_up_due:
                self.catch_up_due = False
                async with self.exclusive():
                    await retry_forever("in-flight reconciliation",
                                        lambda: reconcile_inflight(self, int(time.time() * 1000)))
                self.assignment_ready.set()
            if self.retriage_due:
                self.retriage_due = False
                rep_parts = set(self.owned[REPORTS])
                triaged = await retriage_unseen_reports(self, rep_parts)
                log.info("catch-up of report partitions %s: %d reports triaged", sorted(rep_parts), triaged)
            if self.sweep_due:
                self.sweep_due = False
                await self.sweep()
                await self.request_retriage()

    async def sweep(self) -> int:
        """Re-decide every stored entitlement of the partitions this worker owns."""
        owned = set(self.owned[ENTITLEMENTS])
        if not owned or not self.feed.histories:
            return 0
        # keys only: a list of 1M (key, blob) tuples is 1M more objects for the GC to walk,
        # and reading each blob when its turn comes decides the latest state stored
        items = [k for k, v in list(self.states.data.items()) if entitlement_header(v)[0] in owned]
        topic = self.settings.topic(ENTITLEMENTS)
        if self.sweep_pool is not None:
            return await self._sweep_in_pool(items, topic)
        produced = 0
        for i in range(0, len(items), SWEEP_CHUNK):
            if self.catch_up_due:       # a new assignment: catch up first, then sweep again
                produced += await self.settle()
                self.sweep_due = True
                log.info("sweep interrupted by a new assignment after %d of %d entitlements", i, len(items))
                return produced
            batch = Batch()
            async with self.lock:
                blobs = self._owned_blobs(items[i:i + SWEEP_CHUNK])
                histories = list(self.feed.histories.values())
                for j in range(0, len(blobs), SWEEP_SLICE):
                    await asyncio.sleep(0)     # the previous chunk's emit moves on meanwhile
                    decide_stored(self.codec, self.policy, histories, topic, blobs[j:j + SWEEP_SLICE], batch)
                # One emit in flight at a time, so in-flight marks and ledger checks stay as
                # they were; deciding the next chunk overlaps this one's broker and Redis waits.
                produced += await self.settle()
                self._emitting = asyncio.ensure_future(self.emitter.emit(batch))
        produced += await self.settle()
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements, %d records published", self.sweeps_done, len(items), produced)
        return produced

    def _owned_blobs(self, keys: Sequence[bytes]) -> list[bytes]:
        """The stored states of `keys` still here (not deleted by a tombstone) and still in a
        partition this worker owns (a partition revoked mid-sweep is its new owner's)."""
        data, owned = self.states.data, self.owned[ENTITLEMENTS]
        return [b for k in keys if (b := data.get(k)) is not None and entitlement_header(b)[0] in owned]

    async def _sweep_in_pool(self, keys: list[bytes], topic: str) -> int:
        """The sweep with its decisions made in helper processes (sweeppool.py): chunks are
        decided ahead, a few at a time, and published in order, one emit at a time."""
        assert self.sweep_pool is not None
        histories = list(self.feed.histories.values())
        ahead = self.sweep_pool.processes + 1
        pending: collections.deque[asyncio.Future] = collections.deque()
        produced = 0
        i = 0
        while i < len(keys) or pending:
            while i < len(keys) and len(pending) < ahead and not self.catch_up_due:
                pending.append(self.sweep_pool.submit(histories, topic, self._owned_blobs(keys[i:i + SWEEP_CHUNK])))
                i += SWEEP_CHUNK
            if not pending:
                break
            records, remedies = await pending.popleft()
            async with self.exclusive():
                produced += await self.emitter.emit_encoded(records, remedies)
        if i < len(keys):       # a new assignment: catch up first, then sweep again
            self.sweep_due = True
            log.info("sweep interrupted by a new assignment after %d of %d entitlements", i, len(keys))
            return produced
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements in %d processes, %d records published",
                 self.sweeps_done, len(keys), self.sweep_pool.processes, produced)
        return produced

    async def request_retriage(self) -> None:
        """Ask the reports agent to re-triage reporters whose reports wait for an incident."""
        owned = self.owned[REPORTS]
        topic = self.settings.topic(RETRIAGE)
        sends = []
        for key, blob in list(self.cases.data.items()):
            doc = json.loads(blob)
            if doc.get("pending") and doc["partition"] in owned:
                sends.append((topic, key, b"", doc["partition"]))
        assert self.emitter.producer is not None
        await self.emitter.producer.send_batch(sends)

    # ------------------------------------------------------------------ reports

    async def _covered(self, user_id: str) -> list[RemedyAction]:
        """The remedies the ledger holds for a reporter (prefetched for the batch in hand)."""
        rows = self._remedies_of.get(user_id)
        if rows is None:
            rows = await retry_forever("ledger read", lambda: self.ledger.user_remedies(user_id))
        return [self.codec.decode_obj("remedy_action", raw) for raw in rows]

    async def prefetch_remedies(self, user_ids: Iterable[str]) -> None:
        """One Redis round trip for the reporters of a batch instead of one per report. Safe
        because the ledger only changes when this worker emits, at the end of the batch (or
        another worker does, for users it decided: the same as reading a moment earlier)."""
        ids = sorted(set(user_ids))
        self._remedies_of = await retry_forever("ledger read", lambda: self.ledger.users_remedies(ids)) if ids else {}

    async def store_cases(self, touched: Touched) -> None:
        """Store changed reporter entries and write them to the table's changelog ourselves, in
        one batch: faust's per-record changelog buffer stalls the stream whenever it holds more
        than 100 records (ProducerBuffer.wait_until_ebb), i.e. on every busy report batch."""
        records = store_case_docs(self.cases, touched)
        if records:
            assert self.emitter.producer is not None
            await retry_forever("cases changelog", lambda: self.emitter.producer.send_batch(records))

    async def handle_reports(self, events: list) -> None:
        await self.assignment_ready.wait()
        batch = Batch()
        touched: Touched = {}
        retriage = self.settings.topic(RETRIAGE)
        async with self.exclusive():
            await self.prefetch_remedies(ev.key.decode("utf-8", "replace") for ev in events if ev.key)
            for ev in events:
                m = ev.message
                try:
                    key = ev.key or b""
                    doc = case_doc(self.cases, key, m.partition, touched)
                    # A reporter's reports are triaged in arrival order: earlier ones still
                    # waiting for their incident go first, so amendments stay amendments.
                    if m.topic == retriage:
                        batch.outcomes["retriage"] += 1
                        new = []
                    else:
                        source = Source(m.topic, m.partition, m.offset)
                        decoded = self._decode("damage_report", source, ev.key, ev.value, batch)
                        if decoded is None:
                            continue
                        new = [(ev.value, source, decoded)]
                    queue = [(bytes.fromhex(p["raw"]), Source(*p["source"]), None) for p in doc["pending"]] + new
                    doc["pending"] = []
                    for raw, source, report in queue:
                        if report is None:
                            report = self.codec.decode_obj("damage_report", raw)
                        await self.triage(report, raw, source, doc, batch)
                    touched[key] = (m.partition, doc)
                except Exception as exc:
                    log.exception("report at %s/%s@%s failed", m.topic, m.partition, m.offset)
                    batch.fail(DeadLetter(Source(m.topic, m.partition, m.offset), ev.key, ev.value,
                                          "PROCESS", type(exc).__name__, str(exc)))
            self._remedies_of = {}       # read again for the next batch: the ledger moves on
            # outputs first, then the case: a stored case marks its reports as done
            await self.emitter.emit(batch, outcome_topic=REPORTS)
            await self.store_cases(touched)

    async def triage(self, report: DamageReport, raw: bytes, source: Source, doc: dict, batch: Batch) -> None:
        histories = self.feed.histories
        cid = locate_case(histories, report)
        case = case_from_json(doc["cases"][cid]) if cid and cid in doc["cases"] else None
        covered = await self._covered(report.reporter_id) if cid else []
        decision, new_case = triage_report(self.policy, histories, report, source, case, covered)
        if decision.outcome == "pending":
            doc["pending"].append(pending_entry(raw, source, report.report_id))
        else:
            doc.setdefault("seen", []).append(report.report_id)
            if new_case is not None:
                doc["cases"][new_case.case_id] = case_to_json(new_case)
        batch.add(decision)


def create_app(settings: Settings, policy: Policy | None = None) -> faust.App:
    """A fresh faust app for one worker; `app.pipeline` holds its shared state."""
    return Pipeline(settings, policy).app


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run one worker until SIGTERM/SIGINT (faust handles both and shuts down cleanly)."""
    (settings.state_dir / "workers" / settings.worker_id).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False, quiet=True)
    worker.execute_from_commandline()
