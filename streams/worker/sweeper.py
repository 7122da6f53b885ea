"""The sweeper: what a worker does between records, one thing at a time, in this order.

1. Dead letters of outage windows the feed could not admit are published.
2. After an assignment (of entitlement or report partitions), the catch-up: records other
   workers produced but never ledgered are ledgered (ledger.reconcile), and only then do the
   intakes decide anything of the new assignment (`ready`).
3. Reports of newly assigned partitions that their reporter's case entry has not seen are
   triaged (worker.reports).
4. A sweep: every stored entitlement of the partitions *this* worker owns is re-decided
   against every incident (a window closed or was amended, or partitions were assigned), so
   the sweep scales out with the consumer group; reports waiting for an incident are then
   re-triaged.

A sweep is decided in chunks, each published through the emitter while the next is decided
(`Gate.run_behind`), or in helper processes (worker.sweeppool). A new assignment interrupts a
sweep: the catch-up goes first, then the sweep starts again.
"""
from __future__ import annotations

import asyncio
import collections
import gc
import logging
import time
from typing import Awaitable, Callable

from processors.model import OutageWindow

from streams.decide.admit import Admission
from streams.decide.outputs import Batch
from streams.worker.emitter import Emitter
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.observe import Observer
from streams.worker.retry import retry_forever
from streams.worker.store import StateStore
from streams.worker.sweeppool import SweepPool, decide_stored

log = logging.getLogger(__name__)

SWEEP_CHUNK = 2000
SWEEP_SLICE = 250       # entitlements decided between two turns of the event loop


class Sweeper:
    def __init__(self, admission: Admission, store: StateStore, feed: IncidentFeed, emitter: Emitter,
                 gate: Gate, topic: str, pool: SweepPool | None,
                 reconcile: Callable[[int], Awaitable[int]],
                 catch_up_reports: Callable[[], Awaitable[int]],
                 retriage_waiting: Callable[[], Awaitable[None]], observer: Observer | None = None):
        self.observer = observer or Observer()   # sweep progress and time, reconciliation
        self.admission = admission
        self.store = store
        self.feed = feed
        self.emitter = emitter
        self.gate = gate
        self.topic = topic                     # the real entitlement topic (lineage of sweep remedies)
        self.pool = pool
        self._reconcile = reconcile
        self._catch_up_reports = catch_up_reports
        self._retriage_waiting = retriage_waiting
        self.wanted = asyncio.Event()          # wakes the loop
        self.ready = asyncio.Event()           # the catch-up after the last assignment is done
        self._sweep_due = False                # a full sweep is owed (not just dead letters)
        self._catch_up_due = False             # partitions were assigned: reconcile first
        self._reports_due = False              # report partitions were assigned: triage unseen
        self.sweeps_done = 0
        self._completed = False                # the last sweep ran to its end

    # ------------------------------------------------------------------ requests

    def window_changed(self, window: OutageWindow | None) -> None:
        """The feed accepted a revision (window) or queued a dead letter (None)."""
        if window is not None:
            self._sweep_due = True
        self.wanted.set()

    def partitions_assigned(self, *, reports: bool = False) -> None:
        """Catch up before anything of the new assignment is decided, then sweep."""
        self._catch_up_due = True
        self._reports_due = self._reports_due or reports
        self.ready.clear()
        self._sweep_due = True
        self.wanted.set()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        await self.feed.caught_up.wait()
        # Everything faust, aiokafka and the libraries built at start-up lives as long as the
        # worker: keep it out of the cyclic GC's full collections, which otherwise walk it all
        # every few seconds under load, straight into report latency (bench/results).
        gc.freeze()
        while True:
            await self.wanted.wait()
            self.wanted.clear()
            dead = self.feed.take_dead()
            if dead:
                async with self.gate.exclusive():
                    await self.emitter.emit(Batch(dead=dead))
            if self._catch_up_due:
                self._catch_up_due = False
                async with self.gate.exclusive():
                    self.observer.reconciled(await retry_forever(
                        "in-flight reconciliation", lambda: self._reconcile(int(time.time() * 1000))))
                self.ready.set()
            if self._reports_due:
                self._reports_due = False
                await self._catch_up_reports()
            if self._sweep_due:
                self._sweep_due = False
                await self.sweep()
                await self._retriage_waiting()

    async def sweep(self) -> int:
        """Re-decide every stored entitlement of the partitions this worker owns."""
        if not self.store.owned or not self.feed.histories:
            return 0
        keys = self.store.owned_keys()
        started = self.observer.sweep_started(len(keys))
        completed = False
        try:
            produced = await (self._sweep_in_pool(keys) if self.pool is not None else self._sweep_here(keys))
            completed = self._completed
            return produced
        finally:
            self.observer.sweep_finished(started, completed)

    async def _sweep_here(self, keys: list[bytes]) -> int:
        self._completed = False
        produced = 0
        for i in range(0, len(keys), SWEEP_CHUNK):
            if self._catch_up_due:
                return produced + await self._interrupted(i, len(keys))
            batch = Batch()
            async with self.gate.lock:
                blobs = self.store.owned_blobs(keys[i:i + SWEEP_CHUNK])
                histories = list(self.feed.histories.values())
                for j in range(0, len(blobs), SWEEP_SLICE):
                    await asyncio.sleep(0)     # the previous chunk's emit moves on meanwhile
                    decide_stored(self.admission, histories, self.topic, blobs[j:j + SWEEP_SLICE], batch)
                # One emit in flight at a time, so in-flight marks and ledger checks stay as
                # they were; deciding the next chunk overlaps this one's broker and Redis waits.
                produced += await self.gate.settle()
                self.gate.run_behind(self.emitter.emit(batch))
            self.observer.sweep_progress(len(blobs))
        produced += await self.gate.settle()
        self._completed = True
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements, %d records published", self.sweeps_done, len(keys), produced)
        return produced

    async def _interrupted(self, done: int, total: int) -> int:
        """A new assignment arrived mid-sweep: catch up first, then sweep again."""
        self._sweep_due = True
        log.info("sweep interrupted by a new assignment after %d of %d entitlements", done, total)
        return await self.gate.settle()

    async def _sweep_in_pool(self, keys: list[bytes]) -> int:
        """The sweep with its decisions made in helper processes: chunks are decided ahead, a
        few at a time, and published in order, one emit at a time."""
        assert self.pool is not None
        self._completed = False
        histories = list(self.feed.histories.values())
        ahead = self.pool.processes + 1
        pending: collections.deque[asyncio.Future] = collections.deque()
        produced = 0
        i = 0
        while i < len(keys) or pending:
            while i < len(keys) and len(pending) < ahead and not self._catch_up_due:
                blobs = self.store.owned_blobs(keys[i:i + SWEEP_CHUNK])
                pending.append(self.pool.submit(histories, self.topic, blobs))
                i += SWEEP_CHUNK
            if not pending:
                break
            records, remedies, actions, decided = await pending.popleft()
            async with self.gate.exclusive():
                produced += await self.emitter.emit_encoded(records, remedies, actions)
            self.observer.sweep_progress(decided)
        if i < len(keys):
            return produced + await self._interrupted(i, len(keys))
        self._completed = True
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements in %d processes, %d records published",
                 self.sweeps_done, len(keys), self.pool.processes, produced)
        return produced
