"""One worker, wired: `create_app(settings)` builds a fresh faust app (no module-level app).

The collaborators, each in its own module, with what they are handed here and nothing else:
- IncidentFeed (feed.py) reads every outage window, group-less, into incident histories;
- StateConsumer (consumer.py) is the entitlement group member; it hands batches and
  assignments to EntitlementIntake (entitlements.py), which stores each state (store.py) and
  decides it against every incident on arrival;
- ReportsHandler (reports.py) is the body of the faust `reports` agent and keeps the `cases`
  table (cases.py);
- Sweeper (sweeper.py) does everything between records: the feed's dead letters, the
  catch-up after an assignment, sweeps of owned partitions when a window changes, re-triage;
- Emitter (emitter.py) publishes every decision: ledger check, produce, ack, ledger write;
- Gate (gate.py) makes their decisions take turns.

faust caveats designed around: the reports agent runs with concurrency=1 (issue #606 skips
offsets otherwise); processing_guarantee stays at_least_once (exactly_once has open
duplicate/fencing bugs) and the Redis ledger makes re-processing harmless; no exception may
escape an agent body (faust would ack the event anyway), so poison records become dead letters
and I/O failures are retried in place.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Iterable, NoReturn

import faust

from processors.policy import Policy, load_policy

from streams.decide.admit import Admission
from streams.kafka.topics import ENTITLEMENTS, OUTAGES, REPORTS, RETRIAGE, load_topic_specs
from streams.ledger.reconcile import reconcile_inflight
from streams.ledger.store import Ledger
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.worker.cases import Cases
from streams.worker.consumer import StateConsumer
from streams.worker.emitter import Emitter
from streams.worker.entitlements import EntitlementIntake
from streams.worker.faust_fetch import shorten_fetch_wait
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.reports import ReportsHandler
from streams.worker.store import StateStore
from streams.worker.sweeper import Sweeper
from streams.worker.sweeppool import SweepPool

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 30
EXIT_REFUSED = 3          # the worker's exit status when the cluster refuses its output


def _faust_app(s: Settings, partitions: int) -> faust.App:
    shorten_fetch_wait()
    return faust.App(
        s.topic("makegood"), broker=f"kafka://{s.bootstrap}", store="memory://",
        web_enabled=False, datadir=str(s.state_dir / "workers" / s.worker_id),
        topic_partitions=partitions, topic_replication_factor=1, table_standby_replicas=0,
        processing_guarantee="at_least_once", consumer_auto_offset_reset="earliest",
        broker_session_timeout=10, broker_heartbeat_interval=1, broker_rebalance_timeout=10,
        broker_commit_every=2000, broker_commit_interval=1.0, stream_buffer_maxsize=8192,
        producer_acks=-1, producer_linger=0.005, autodiscover=False,
    )


class Worker:
    """The collaborators of one worker and the faust app that runs them."""

    def __init__(self, settings: Settings, policy: Policy | None = None):
        s = self.settings = settings
        policy = policy or load_policy(str(settings.policy_path))
        codec = Codec.from_dir(settings.schemas_dir)
        specs = load_topic_specs(settings.topics_file)
        n_reports = specs[REPORTS].partitions
        self.app = app = _faust_app(s, n_reports)
        self.admission = admission = Admission(codec, policy)
        self.ledger = ledger = Ledger(s)
        self.emitter = emitter = Emitter(s, codec, ledger, on_refused=self._refused)
        self.gate = gate = Gate()
        self.store = store = StateStore(admission)
        self.sweep_pool = (SweepPool(s.sweep_processes, s.schemas_dir, policy) if s.sweep_processes > 0 else None)
        self.feed = feed = IncidentFeed(s, admission, self._window_changed, specs[OUTAGES].partitions)
        cases = Cases(app.Table("cases", key_type=bytes, value_type=bytes, partitions=n_reports))
        self.sweeper = sweeper = Sweeper(
            admission, store, feed, emitter, gate, s.topic(ENTITLEMENTS), self.sweep_pool,
            reconcile=lambda now_ms: reconcile_inflight(s, ledger, codec, now_ms),
            catch_up_reports=lambda: self.reports.catch_up(),
            retriage_waiting=lambda: self.reports.retriage_waiting(),
            claim=lambda ids, ttl_ms: ledger.claim(ids, s.worker_id, ttl_ms))
        self.reports = ReportsHandler(s, admission, cases, feed, emitter, ledger, gate, sweeper.ready)
        self.entitlements = intake = EntitlementIntake(
            admission, store, feed, emitter, gate, specs[ENTITLEMENTS].partitions,
            on_assigned=sweeper.partitions_assigned, ready=sweeper.ready)
        self.state_consumer = StateConsumer(s, admission, intake.assigned, intake.revoked, intake.handle)
        self._wire(app, n_reports)

    @staticmethod
    def _refused(line: str) -> NoReturn:
        """Output the cluster will never take: stop now, with one line. Nothing of the batch
        in hand was committed or ledgered, so whoever runs next redoes it exactly."""
        log.critical("stopping: %s", line)
        logging.shutdown()
        os._exit(EXIT_REFUSED)

    def _window_changed(self, window: Any) -> None:
        self.sweeper.window_changed(window)

    def _wire(self, app: faust.App, n_reports: int) -> None:
        s = self.settings
        raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
        report_topics = app.topic(s.topic(REPORTS), s.topic(RETRIAGE), partitions=n_reports, **raw)

        # Reports (and entitlement states, in _run_services) wait for the incident feed to catch
        # up, so that nothing is decided against a partial history (it would be right
        # eventually, but reports would lose their order).
        async def reports(stream: Any) -> None:
            await self.feed.caught_up.wait()
            async for events in stream.take_events(500, within=0.02):
                await self.reports.handle(events)

        app.agent(report_topics, name="reports", concurrency=1)(reports)
        app.task(self._run_services)
        app.on_partitions_assigned.connect(self._reports_assigned)
        app.on_partitions_revoked.connect(self._reports_revoked)
        app.worker_parts = self  # handy for tests and tools

    def _report_partitions(self, tps: Iterable[Any]) -> set[int]:
        name = self.settings.topic(REPORTS)
        return {tp.partition for tp in tps if tp.topic == name}

    async def _reports_assigned(self, app: Any, assigned: Iterable[Any], **kw: Any) -> None:
        self.reports.owned = self._report_partitions(list(assigned))
        log.info("assigned report partitions %s", sorted(self.reports.owned))
        self.sweeper.partitions_assigned(reports=True)

    async def _reports_revoked(self, app: Any, revoked: Iterable[Any], **kw: Any) -> None:
        self.reports.owned -= self._report_partitions(list(revoked))

    async def _run_services(self, app: Any = None) -> None:
        await self.emitter.start()
        if self.sweep_pool is not None:
            await self.sweep_pool.start()
        tasks = (asyncio.ensure_future(self.feed.run()), asyncio.ensure_future(self.sweeper.run()),
                 asyncio.ensure_future(self._consume_states()))
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            pass
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.gate.drain(SHUTDOWN_DRAIN_S)   # a sweep chunk's records: ledger them first
            if self.sweep_pool is not None:
                self.sweep_pool.close()
            await self.emitter.stop()
            await self.ledger.close()

    async def _consume_states(self) -> None:
        await self.feed.caught_up.wait()
        await self.state_consumer.run()


def create_app(settings: Settings, policy: Policy | None = None) -> faust.App:
    """A fresh faust app for one worker; `app.worker_parts` holds its collaborators."""
    return Worker(settings, policy).app


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run one worker until SIGTERM/SIGINT (faust handles both and shuts down cleanly)."""
    (settings.state_dir / "workers" / settings.worker_id).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False, quiet=True)
    worker.execute_from_commandline()
