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
from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable, NoReturn

import faust
from prometheus_client import disable_created_metrics

from processors.errors import MakegoodError
from processors.policy import Policy, load_policy

from streams.decide.admit import Admission
from streams.kafka.topics import ENTITLEMENTS, OUTAGES, REPORTS, RETRIAGE, load_topic_specs
from streams.errors import StartupError
from streams.ledger.reconcile import reconcile_inflight
from streams.ops.health import Health
from streams.ops.http import OpsServer
from streams.ops.logs import LibraryNoise, setup_logging
from streams.ops.metrics import WorkerMetrics
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.worker.cases import Cases
from streams.worker.consumer import StateConsumer
from streams.worker.emitter import Emitter
from streams.worker.entitlements import EntitlementIntake
from streams.worker.faust_fetch import shorten_fetch_wait
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.observe import Observer, TimedLedger
from streams.worker.preflight import check_redis_url, check_topics, load_worker_policy, wait_for_kafka
from streams.worker.reports import ReportsHandler
from streams.worker.store import StateStore
from streams.worker.sweeper import Sweeper
from streams.worker.sweeppool import SweepPool
from streams.worker.watch import CONDITIONS, KafkaProbe, Watch

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 30
EXIT_REFUSED = 3          # the worker's exit status when the cluster refuses its output


def _faust_app(s: Settings, partitions: int) -> faust.App:
    shorten_fetch_wait()
    return faust.App(
        s.topic("makegood"), broker=f"kafka://{s.bootstrap}", broker_client_id=s.worker_id, store="memory://",
        web_enabled=False, datadir=str(s.state_dir / "workers" / s.worker_id),
        topic_partitions=partitions, topic_replication_factor=1, table_standby_replicas=0,
        processing_guarantee="at_least_once", consumer_auto_offset_reset="earliest",
        broker_session_timeout=10, broker_heartbeat_interval=1, broker_rebalance_timeout=10,
        broker_commit_every=2000, broker_commit_interval=1.0, stream_buffer_maxsize=8192,
        producer_acks=-1, producer_linger=0.005, autodiscover=False,
    )


class Worker:
    """The collaborators of one worker and the faust app that runs them."""

    def __init__(self, settings: Settings, policy: Policy | None = None, *, metrics: WorkerMetrics | None = None,
                 health: Health | None = None, noise: LibraryNoise | None = None):
        s = self.settings = settings
        policy = policy or load_policy(str(settings.policy_path))
        codec = Codec.from_dir(settings.schemas_dir)
        specs = load_topic_specs(settings.topics_file)
        n_reports = specs[REPORTS].partitions
        self.app = app = _faust_app(s, n_reports)
        self.metrics = metrics = metrics or WorkerMetrics()
        self.health = health = health or Health(CONDITIONS)
        self.observer = observer = Observer(metrics, s.namespace)
        self.admission = admission = Admission(codec, policy)
        self.ledger = ledger = TimedLedger(s, metrics)
        self.emitter = emitter = Emitter(s, codec, ledger, on_refused=self._refused, observer=observer)
        self.gate = gate = Gate()
        self.store = store = StateStore(admission)
        metrics.store_size.set_function(lambda: len(store))
        self.sweep_pool = (SweepPool(s.sweep_processes, s.schemas_dir, policy) if s.sweep_processes > 0 else None)
        self.feed = feed = IncidentFeed(s, admission, self._window_changed, specs[OUTAGES].partitions,
                                        observer=observer)
        cases = Cases(app.Table("cases", key_type=bytes, value_type=bytes, partitions=n_reports))
        self.sweeper = sweeper = Sweeper(
            admission, store, feed, emitter, gate, s.topic(ENTITLEMENTS), self.sweep_pool,
            reconcile=lambda now_ms: reconcile_inflight(s, ledger, codec, now_ms),
            catch_up_reports=lambda: self.reports.catch_up(),
            retriage_waiting=lambda: self.reports.retriage_waiting(), observer=observer)
        self.reports = ReportsHandler(s, admission, cases, feed, emitter, ledger, gate, sweeper.ready, app.conf.id)
        self.entitlements = intake = EntitlementIntake(
            admission, store, feed, emitter, gate, specs[ENTITLEMENTS].partitions,
            on_assigned=sweeper.partitions_assigned, ready=sweeper.ready)
        self.state_consumer = StateConsumer(s, admission, intake.assigned, intake.revoked,
                                            self._counted(ENTITLEMENTS, intake.handle), observer=observer)
        self.watch = Watch(s, health, metrics, noise or LibraryNoise(), ledger=ledger,
                           probe=KafkaProbe(s, self.state_consumer.group, app.conf.id),
                           held=self._held, feed_positions=lambda: dict(feed.positions),
                           conditions=self._conditions)
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

    def _counted(self, logical: str, handle: Any) -> Any:
        """`handle`, counting the records of each batch it is handed as consumed."""
        count = self.observer.consumed

        async def counted(msgs: list) -> None:
            count(logical, len(msgs))
            await handle(msgs)
        return counted

    def _count_events(self, events: list) -> None:
        for topic, n in Counter(ev.message.topic for ev in events).items():
            self.observer.consumed(self.observer.logical(topic), n)

    def _held(self) -> dict[str, set[int]]:
        """The input partitions this worker holds (for the lag probe); called on the loop."""
        return {ENTITLEMENTS: set(self.store.owned), REPORTS: set(self.reports.owned),
                RETRIAGE: set(self.reports.owned)}

    def _conditions(self) -> dict[str, str | None]:
        """Readiness besides Kafka and Redis: None when met, else what the worker is doing."""
        obs, app = self.observer, self.app
        if obs.restoring and obs.restore_read < obs.restore_target:
            entitlements: str | None = (f"restoring entitlement partitions {obs.restore_partitions}: "
                                        f"{obs.restore_read:,} of {obs.restore_target:,} records read")
        elif obs.restoring:
            entitlements = (f"taking over entitlement partitions {obs.restore_partitions} "
                            "(waits for the work in hand, which may be waiting for Redis or Kafka)")
        elif not self.sweeper.ready.is_set():
            entitlements = "waiting for partitions, or catching up after an assignment"
        else:
            entitlements = None
        reports = ("faust is rebalancing the report partitions" if getattr(app, "rebalancing", False)
                   else "faust is recovering the cases table" if getattr(app, "in_recovery", False) else None)
        return {"incident feed": None if self.feed.caught_up.is_set() else "reading every outage window",
                "entitlements": entitlements, "reports": reports}

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
                self._count_events(events)
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
        self.watch.start()
        await self.emitter.start()
        if self.sweep_pool is not None:
            await self.sweep_pool.start()
        tasks = (asyncio.ensure_future(self.feed.run()), asyncio.ensure_future(self.sweeper.run()),
                 asyncio.ensure_future(self._consume_states()))
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            log.info("stopping: finishing the batch in hand, then committing")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.gate.drain(SHUTDOWN_DRAIN_S)   # a sweep chunk's records: ledger them first
            if self.sweep_pool is not None:
                self.sweep_pool.close()
            await self.emitter.stop()
            await self.watch.stop()
            await self.ledger.close()

    async def _consume_states(self) -> None:
        await self.feed.caught_up.wait()
        await self.state_consumer.run()


def create_app(settings: Settings, policy: Policy | None = None) -> faust.App:
    """A fresh faust app for one worker; `app.worker_parts` holds its collaborators."""
    return Worker(settings, policy).app


def run_worker(settings: Settings, loglevel: str = "INFO") -> int:
    """Run one worker until SIGTERM/SIGINT (faust handles both and shuts down cleanly).

    Returns an exit status when it cannot start; every such failure is one CRITICAL line
    that says what to do (worker.preflight), never a traceback."""
    noise = setup_logging(level=loglevel, library_level=settings.library_loglevel, fmt=settings.log_format,
                          worker_id=settings.worker_id)
    try:
        _run(settings, loglevel, noise)
    except MakegoodError as exc:
        log.critical("cannot start: %s", exc)
        return 1
    return 0


def _run(settings: Settings, loglevel: str, noise: LibraryNoise) -> None:
    s = settings
    policy = load_worker_policy(s)
    check_redis_url(s)
    disable_created_metrics()
    metrics = WorkerMetrics()
    health = Health(CONDITIONS)
    try:
        server = OpsServer(s.metrics_host, s.metrics_port, health, metrics.exposition).start()
    except OSError as exc:
        raise StartupError(f"cannot serve /metrics on {s.metrics_host}:{s.metrics_port} ({exc.strerror}); "
                           "set MAKEGOOD_METRICS_PORT to a free port, or 0 to pick one") from None
    ns = s.namespace or "(none)"
    metrics.info.info({"version": _version(), "policy_version": policy.version, "namespace": ns,
                       "worker_id": s.worker_id})
    log.info("worker %s starting: makegood %s, policy %s (%s), namespace %s, brokers %s, Redis %s, "
             "consumer groups %s (reports) and %s (entitlements), metrics http://%s:%d/metrics, "
             "sweep processes %d", s.worker_id, _version(), policy.version, s.policy_path, ns, s.bootstrap,
             s.redis_display, s.reports_group, s.entitlements_group, s.metrics_host,
             server.port, s.sweep_processes)
    check_topics(s, wait_for_kafka(s, health))
    (s.state_dir / "workers" / s.worker_id).mkdir(parents=True, exist_ok=True)
    worker = Worker(s, policy, metrics=metrics, health=health, noise=noise)
    runner = faust.Worker(worker.app, loglevel=loglevel, redirect_stdouts=False, quiet=True,
                          override_logging=False)
    runner.spinner = None         # faust's start-up spinner writes terminal escapes even into log files
    try:
        runner.execute_from_commandline()
    finally:
        log.info("worker %s stopped", s.worker_id)


def _version() -> str:
    try:
        return version("makegood")
    except PackageNotFoundError:
        return "unknown"
