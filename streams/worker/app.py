"""One worker, wired: `create_app(settings)` builds a fresh worker (no module-level state).

The collaborators, each in its own module, with what they are handed here and nothing else:
- IncidentFeed (feed.py) reads every outage window, group-less, into incident histories;
- two GroupConsumers (consumer.py): entitlement states for EntitlementIntake
  (entitlements.py), which stores each state (store.py) and decides it on arrival; damage
  reports and re-triage requests for ReportsHandler (reports.py), which keeps each reporter's
  cases (cases.py);
- Sweeper (sweeper.py) does everything between records: the feed's dead letters, the
  catch-up after an assignment, sweeps of owned partitions when a window changes, re-triage;
- Guard (guard.py) counts what revisions the policy's approval limits hold back would cost,
  per owned partition, into Redis (ledger/estimates.py), and hands the cluster's totals to the
  feed, which releases a revision or keeps it held until an operator approves it;
- Emitter (emitter.py) publishes every decision in a Kafka transaction with the offsets it
  answers: ledger check, transaction, ledger write;
- Gate (gate.py) makes their decisions take turns;
- Observer (observe.py) counts what they report into the metrics, and Watch (watch.py) serves
  the heartbeat, readiness, Kafka/Redis probes and the progress line (ops/ for the HTTP side).

No faust: its agents top out near 5,000 events/s here, its exactly_once mode has open
duplicate and fencing bugs (faust #517, #323), and its consumer cannot hand the group metadata
a librdkafka transaction needs to be fenced (KIP-447). The worker is a plain asyncio program
on librdkafka; SIGTERM and SIGINT stop it after the batch in hand.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from prometheus_client import disable_created_metrics

from processors.policy import Policy, load_policy

from streams.decide.admit import Admission
from streams.errors import MakegoodError, StartupError
from streams.kafka.topics import CASES, DECISIONS, ENTITLEMENTS, OUTAGES, REPORTS, RETRIAGE, load_topic_specs
from streams.ledger.estimates import Estimates
from streams.ledger.reconcile import reconcile_inflight
from streams.ops.health import Health
from streams.ops.http import OpsServer
from streams.ops.logs import LibraryNoise, setup_logging
from streams.security import RedactSecrets
from streams.ops.metrics import WorkerMetrics
from streams.settings import Settings
from streams.wire.framing import open_codec
from streams.worker.cases import Cases
from streams.worker.consumer import GroupConsumer
from streams.worker.emitter import Emitter
from streams.worker.entitlements import EntitlementIntake
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.guard import Guard
from streams.worker.observe import Observer, TimedLedger
from streams.worker.preflight import check_redis_url, check_topics, load_worker_policy, wait_for_kafka
from streams.worker.reports import ReportsHandler
from streams.worker.retry import RegistryWait
from streams.worker.rocks import StateStore
from streams.worker.sweeper import Sweeper
from streams.worker.sweeppool import SweepPool
from streams.worker.watch import CONDITIONS, KafkaProbe, Watch

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 30
EXIT_REFUSED = 3          # the worker's exit status when the cluster refuses its output


class Worker:
    """The collaborators of one worker; `run()` runs them until cancelled."""

    def __init__(self, settings: Settings, policy: Policy | None = None, *, metrics: WorkerMetrics | None = None,
                 health: Health | None = None, noise: LibraryNoise | None = None):
        s = self.settings = settings
        policy = policy or load_policy(str(settings.policy_path))
        # outage_wait=0: a schema id the registry cannot resolve now raises RegistryUnavailable at
        # once, and the work that needed it waits on the loop's terms (worker.retry.RegistryWait)
        codec = open_codec(settings, outage_wait=0)
        self.registry = registry = RegistryWait()
        specs = load_topic_specs(settings.topics_file)
        self.metrics = metrics = metrics or WorkerMetrics()
        self.health = health = health or Health(CONDITIONS)
        self.observer = observer = Observer(metrics, s.namespace)
        self.admission = admission = Admission(codec, policy)
        self.ledger = ledger = TimedLedger(s, metrics)
        self.emitter = emitter = Emitter(s, codec, ledger, on_refused=self._refused, observer=observer)
        self.gate = gate = Gate()
        self.store = store = StateStore(s.store_root, admission, s.topic(ENTITLEMENTS))
        store.open()
        metrics.store_size.set_function(lambda: len(store))
        self.sweep_pool = SweepPool(s.sweep_processes, s, policy) if s.sweep_processes > 0 else None
        self.feed = feed = IncidentFeed(s, admission, self._window_changed, specs[OUTAGES].partitions,
                                        observer=observer, registry=registry)
        self.sweeper = sweeper = Sweeper(
            admission, store, feed, emitter, gate, s.topic(ENTITLEMENTS), self.sweep_pool,
            reconcile=lambda now_ms: reconcile_inflight(s, ledger, codec, now_ms),
            retriage_waiting=lambda: self.reports.retriage_waiting(),
            fence=lambda: self.state_consumer.fence(store.owned), observer=observer, registry=registry,
            claim=lambda ids, ttl_ms: ledger.claim(ids, s.worker_id, ttl_ms))
        self.guard = guard = Guard(admission, store, feed, gate,
                                   Estimates(ledger, s.redis_prefix, specs[ENTITLEMENTS].partitions),
                                   s.topic(ENTITLEMENTS), sweeper.ready, self._window_changed)
        self.entitlements = intake = EntitlementIntake(
            s, admission, store, feed, emitter, gate, specs[ENTITLEMENTS].partitions,
            on_assigned=lambda: (guard.partitions_assigned(), sweeper.partitions_assigned()),
            ready=sweeper.ready, observer=observer,
            on_revoked=sweeper.partitions_revoked)
        self.state_consumer = GroupConsumer(s, "entitlements", [s.topic(ENTITLEMENTS)], intake.restore,
                                            intake.assigned, intake.revoked, intake.handle, observer=observer,
                                            registry=registry)
        self._consumers: list[asyncio.Future] = []
        self.reports = reports = ReportsHandler(s, admission, Cases(s.topic(CASES)), feed, emitter, ledger, gate,
                                                sweeper.ready, on_assigned=sweeper.partitions_assigned)
        self.report_consumer = GroupConsumer(s, "reports", [s.topic(REPORTS), s.topic(RETRIAGE), s.topic(DECISIONS)],
                                             reports.restore,
                                             reports.assigned, reports.revoked, reports.handle, observer=observer,
                                             registry=registry)
        self.watch = Watch(s, health, metrics, noise or LibraryNoise(), ledger=ledger,
                           probe=KafkaProbe(s, s.entitlements_group, s.reports_group),
                           held=self._held, feed_positions=lambda: dict(feed.positions),
                           conditions=self._conditions)

    def _held(self) -> dict[str, set[int]]:
        """The input partitions this worker holds (for the lag probe); called on the loop."""
        return {ENTITLEMENTS: set(self.store.owned), REPORTS: set(self.reports.owned),
                RETRIAGE: set(self.reports.owned), DECISIONS: set(self.reports.owned)}

    def _conditions(self) -> dict[str, str | None]:
        """Readiness besides Kafka and Redis: None when met, else what the worker is doing."""
        obs = self.observer
        if obs.restoring and obs.restore_read < obs.restore_target:
            entitlements: str | None = (f"restoring entitlement partitions {obs.restore_partitions}: "
                                        f"{obs.restore_read:,} of {obs.restore_target:,} records read")
        elif self.state_consumer.assigning or obs.restoring:
            entitlements = "taking over entitlement partitions (waits for the work in hand)"
        elif not self.sweeper.ready.is_set():
            entitlements = "waiting for partitions, or catching up after an assignment"
        else:
            entitlements = None
        reports = "taking over report partitions (reading their cases back)" if self.report_consumer.assigning else None
        return {"incident feed": None if self.feed.caught_up.is_set() else "reading every outage window",
                "entitlements": entitlements, "reports": reports, "schema registry": self.registry.waiting}

    @staticmethod
    def _refused(line: str) -> NoReturn:
        """Output the cluster will never take: stop now, with one line. Nothing of the batch
        in hand was committed or ledgered, so whoever runs next redoes it exactly."""
        log.critical("stopping: %s", line)
        logging.shutdown()
        os._exit(EXIT_REFUSED)

    def _window_changed(self, window: object) -> None:
        self.sweeper.window_changed(window)

    async def run(self) -> None:
        self.watch.start()
        await self.emitter.start()
        if self.sweep_pool is not None:
            await self.sweep_pool.start()
        self._consumers = [asyncio.ensure_future(self._after_feed(self.state_consumer)),
                           asyncio.ensure_future(self._after_feed(self.report_consumer))]
        tasks = [asyncio.ensure_future(self.feed.run()), asyncio.ensure_future(self.sweeper.run()),
                 asyncio.ensure_future(self.guard.run()), *self._consumers]
        try:
            await asyncio.gather(*tasks)
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
            self.store.close()

    async def stop(self, timeout: float) -> None:
        """Let both consumers finish (commit) the batch in hand and leave their groups."""
        for consumer in (self.state_consumer, self.report_consumer):
            consumer.request_stop()
        if self._consumers:
            await asyncio.wait(self._consumers, timeout=timeout)

    async def _after_feed(self, consumer: GroupConsumer) -> None:
        """Nothing is decided against a partial incident history: the consumers join their
        groups once the feed has read every window there was at start."""
        await self.feed.caught_up.wait()
        await consumer.run()


def create_app(settings: Settings, policy: Policy | None = None) -> Worker:
    """A fresh worker for `settings` (run it with `await worker.run()`)."""
    return Worker(settings, policy)


def run_worker(settings: Settings, loglevel: str = "INFO") -> int:
    """Run one worker until SIGTERM/SIGINT, then finish the batch in hand and stop.

    Returns an exit status when it cannot start; every such failure is one CRITICAL line that
    says what to do (worker.preflight), never a traceback."""
    noise = setup_logging(level=loglevel, library_level=settings.library_loglevel, fmt=settings.log_format,
                          worker_id=settings.worker_id, scrub=RedactSecrets(settings.secrets()))
    try:
        _run(settings, noise)
    except MakegoodError as exc:
        log.critical("cannot start: %s", settings.redact(str(exc)))
        return 1
    return 0


def _run(settings: Settings, noise: LibraryNoise) -> None:
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
    log.info("worker %s starting: makegood %s, policy %s (%s), namespace %s, brokers %s (%s), Redis %s, "
             "consumer groups %s (entitlements) and %s (reports), metrics http://%s:%d/metrics, "
             "sweep processes %d", s.worker_id, _version(), policy.version, s.policy_path, ns, s.bootstrap,
             s.kafka_security.describe(),
             s.redis_display, s.entitlements_group, s.reports_group, s.metrics_host,
             server.port, s.sweep_processes)
    check_topics(s, wait_for_kafka(s, health))
    (s.state_dir / "workers" / s.worker_id).mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(_serve(Worker(s, policy, metrics=metrics, health=health, noise=noise)))
    finally:
        log.info("worker %s stopped", s.worker_id)


def _version() -> str:
    try:
        return version("makegood")
    except PackageNotFoundError:
        return "unknown"


async def _serve(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.ensure_future(worker.run())
    stopping = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
    if running in done:
        stopping.cancel()
        running.result()          # a crash: let it surface
        return
    log.info("stopping (signal): finishing the batch in hand, then committing")
    await worker.stop(SHUTDOWN_DRAIN_S)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
