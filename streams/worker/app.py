"""One worker, wired: `create_app(settings)` builds a fresh worker (no module-level state).

The collaborators, each in its own module, with what they are handed here and nothing else:
- IncidentFeed (feed.py) reads every outage window, group-less, into incident histories;
- two GroupConsumers (consumer.py): entitlement states for EntitlementIntake
  (entitlements.py), which stores each state (store.py) and decides it on arrival; damage
  reports and re-triage requests for ReportsHandler (reports.py), which keeps each reporter's
  cases (cases.py);
- Sweeper (sweeper.py) does everything between records: the feed's dead letters, the
  catch-up after an assignment, sweeps of owned partitions when a window changes, re-triage;
- Emitter (emitter.py) publishes every decision in a Kafka transaction with the offsets it
  answers: ledger check, transaction, ledger write;
- Gate (gate.py) makes their decisions take turns.

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
import sys
from typing import NoReturn

from processors.policy import Policy, load_policy

from streams.decide.admit import Admission
from streams.kafka.topics import CASES, ENTITLEMENTS, OUTAGES, REPORTS, RETRIAGE, load_topic_specs
from streams.ledger.reconcile import reconcile_inflight
from streams.ledger.store import Ledger
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.worker.cases import Cases
from streams.worker.consumer import GroupConsumer
from streams.worker.emitter import Emitter
from streams.worker.entitlements import EntitlementIntake
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.reports import ReportsHandler
from streams.worker.store import StateStore
from streams.worker.sweeper import Sweeper
from streams.worker.sweeppool import SweepPool

log = logging.getLogger(__name__)

SHUTDOWN_DRAIN_S = 30
EXIT_REFUSED = 3          # the worker's exit status when the cluster refuses its output


class Worker:
    """The collaborators of one worker; `run()` runs them until cancelled."""

    def __init__(self, settings: Settings, policy: Policy | None = None):
        s = self.settings = settings
        policy = policy or load_policy(str(settings.policy_path))
        codec = Codec.from_dir(settings.schemas_dir)
        specs = load_topic_specs(settings.topics_file)
        self.admission = admission = Admission(codec, policy)
        self.ledger = ledger = Ledger(s)
        self.emitter = emitter = Emitter(s, codec, ledger, on_refused=self._refused)
        self.gate = gate = Gate()
        self.store = store = StateStore(admission)
        self.sweep_pool = SweepPool(s.sweep_processes, s.schemas_dir, policy) if s.sweep_processes > 0 else None
        self.feed = feed = IncidentFeed(s, admission, self._window_changed, specs[OUTAGES].partitions)
        self.sweeper = sweeper = Sweeper(
            admission, store, feed, emitter, gate, s.topic(ENTITLEMENTS), self.sweep_pool,
            reconcile=lambda now_ms: reconcile_inflight(s, ledger, codec, now_ms),
            retriage_waiting=lambda: self.reports.retriage_waiting(),
            fence=lambda: self.state_consumer.fence(store.owned))
        self.entitlements = intake = EntitlementIntake(
            s, admission, store, feed, emitter, gate, specs[ENTITLEMENTS].partitions,
            on_assigned=sweeper.partitions_assigned, ready=sweeper.ready)
        self.state_consumer = GroupConsumer(s, "entitlements", [s.topic(ENTITLEMENTS)], intake.restore,
                                            intake.assigned, intake.revoked, intake.handle)
        self.reports = reports = ReportsHandler(s, admission, Cases(s.topic(CASES)), feed, emitter, ledger, gate,
                                                sweeper.ready, on_assigned=sweeper.partitions_assigned)
        self._consumers: list[asyncio.Future] = []
        self.report_consumer = GroupConsumer(s, "reports", [s.topic(REPORTS), s.topic(RETRIAGE)], reports.restore,
                                             reports.assigned, reports.revoked, reports.handle)

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
        await self.emitter.start()
        if self.sweep_pool is not None:
            await self.sweep_pool.start()
        self._consumers = [asyncio.ensure_future(self._after_feed(self.state_consumer)),
                           asyncio.ensure_future(self._after_feed(self.report_consumer))]
        tasks = [asyncio.ensure_future(self.feed.run()), asyncio.ensure_future(self.sweeper.run()),
                 *self._consumers]
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
            await self.ledger.close()

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


def run_worker(settings: Settings, loglevel: str = "INFO") -> None:
    """Run one worker until SIGTERM/SIGINT, then finish the batch in hand and stop."""
    logging.basicConfig(level=loglevel, stream=sys.stdout,
                        format="[%(asctime)s] [%(process)d] %(levelname)s %(name)s: %(message)s")
    (settings.state_dir / "workers" / settings.worker_id).mkdir(parents=True, exist_ok=True)
    asyncio.run(_serve(create_app(settings)))


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
    log.info("stopping (signal): finishing the batch in hand")
    await worker.stop(SHUTDOWN_DRAIN_S)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
