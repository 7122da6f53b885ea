"""The sweeper: what a worker does between records, one thing at a time, in this order.

1. Dead letters of outage windows the feed could not admit are published, once per cluster:
   every worker reads every window, so each claims a bad window's dead letter in Redis first
   and only the claimant publishes it; a worker whose claim was refused looks again when that
   claim expires (the claimant may have died before publishing; the ledger check then drops
   what it did publish).
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
from streams.decide.outputs import Batch, DeadLetter
from streams.worker.emitter import Emitter
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.retry import retry_forever
from streams.worker.store import StateStore
from streams.worker.sweeppool import SweepPool, decide_stored

log = logging.getLogger(__name__)

SWEEP_CHUNK = 2000
SWEEP_SLICE = 250       # entitlements decided between two turns of the event loop
# How long a worker's claim on a feed dead letter keeps the others off it: far longer than a
# produce and a ledger write take, short enough that a claimant that died is soon replaced.
CLAIM_MS = 60_000


class Sweeper:
    def __init__(self, admission: Admission, store: StateStore, feed: IncidentFeed, emitter: Emitter,
                 gate: Gate, topic: str, pool: SweepPool | None,
                 reconcile: Callable[[int], Awaitable[int]],
                 catch_up_reports: Callable[[], Awaitable[int]],
                 retriage_waiting: Callable[[], Awaitable[None]],
                 claim: Callable[[list[str], int], Awaitable[set[str]]]):
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
        self._claim = claim                    # (output ids, ttl ms) -> the ids this worker holds
        self._unclaimed: list[DeadLetter] = []  # feed dead letters another worker had claimed
        self.wanted = asyncio.Event()          # wakes the loop
        self.ready = asyncio.Event()           # the catch-up after the last assignment is done
        self._sweep_due = False                # a full sweep is owed (not just dead letters)
        self._catch_up_due = False             # partitions were assigned: reconcile first
        self._reports_due = False              # report partitions were assigned: triage unseen
        self.sweeps_done = 0

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
            dead = self._unclaimed + self.feed.take_dead()
            if dead:
                await self._feed_dead_letters(dead)
            if self._catch_up_due:
                self._catch_up_due = False
                async with self.gate.exclusive():
                    await retry_forever("in-flight reconciliation",
                                        lambda: self._reconcile(int(time.time() * 1000)))
                self.ready.set()
            if self._reports_due:
                self._reports_due = False
                await self._catch_up_reports()
            if self._sweep_due:
                self._sweep_due = False
                await self.sweep()
                await self._retriage_waiting()

    async def _feed_dead_letters(self, dead: list[DeadLetter]) -> None:
        """Publish the dead letters of bad windows this worker claims; keep the others and look
        again once their claims may have expired."""
        mine = await retry_forever("dead-letter claim", lambda: self._claim([d.id for d in dead], CLAIM_MS))
        self._unclaimed = [d for d in dead if d.id not in mine]
        if self._unclaimed:
            asyncio.get_running_loop().call_later(CLAIM_MS / 1000, self.wanted.set)
        if mine:
            async with self.gate.exclusive():
                await self.emitter.emit(Batch(dead=[d for d in dead if d.id in mine]))

    async def sweep(self) -> int:
        """Re-decide every stored entitlement of the partitions this worker owns."""
        if not self.store.owned or not self.feed.histories:
            return 0
        keys = self.store.owned_keys()
        if self.pool is not None:
            return await self._sweep_in_pool(keys)
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
        produced += await self.gate.settle()
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
        histories = list(self.feed.histories.values())
        ahead = self.pool.processes + 1
        pending: collections.deque[asyncio.Future] = collections.deque()
        produced = 0
        i = 0
        while i < len(keys) or pending:
            while i < len(keys) and len(pending) < ahead and not self._catch_up_due:
                pending.append(self.pool.submit(histories, self.topic,
                                                self.store.owned_blobs(keys[i:i + SWEEP_CHUNK])))
                i += SWEEP_CHUNK
            if not pending:
                break
            records, remedies = await pending.popleft()
            async with self.gate.exclusive():
                produced += await self.emitter.emit_encoded(records, remedies)
        if i < len(keys):
            return produced + await self._interrupted(i, len(keys))
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements in %d processes, %d records published",
                 self.sweeps_done, len(keys), self.pool.processes, produced)
        return produced
