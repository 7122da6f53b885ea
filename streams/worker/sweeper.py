"""The sweeper: what a worker does between records, one thing at a time, in this order.

1. Dead letters of outage windows the feed could not admit are published, once per cluster:
   every worker reads every window, so each claims a bad window's dead letter in Redis first
   and only the claimant publishes it; a worker whose claim was refused looks again when that
   claim expires (the claimant may have died before publishing; the ledger check then drops
   what it did publish).
2. After an assignment (of entitlement or report partitions), the catch-up: records other
   workers committed but never ledgered are ledgered (ledger.reconcile), and only then do the
   handlers decide anything of the new assignment (`ready`).
3. A sweep: every stored entitlement of the partitions *this* worker owns is re-decided
   against every incident (a window closed or was amended, or partitions were assigned), so
   the sweep scales out with the consumer group; reports waiting for an incident are then
   re-triaged.

A sweep is decided in chunks, each published through the emitter while the next is decided
(`Gate.run_behind`), or in helper processes (worker.sweeppool). Each chunk's transaction carries
the owned partitions' committed offsets (`fence`), so a worker the group has moved on from
cannot publish a sweep either. A new assignment interrupts a sweep: the catch-up goes first,
then the sweep starts again.
"""
from __future__ import annotations

import asyncio
import collections
import gc
import logging
import time
from typing import Awaitable, Callable, Iterator

from processors.model import OutageWindow

from streams.decide.admit import Admission
from streams.decide.outputs import Batch, DeadLetter
from streams.errors import GroupFenced, RegistryUnavailable
from streams.kafka.producer import Commit
from streams.worker.emitter import Emitter
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.observe import Observer
from streams.worker.retry import RegistryWait, retry_forever
from streams.worker.rocks import StateStore
from streams.worker.store import selector
from streams.worker.sweeppool import SweepPool, decide_stored

log = logging.getLogger(__name__)

SWEEP_CHUNK = 2000
SWEEP_SLICE = 250       # entitlements decided between two turns of the event loop
# How long a worker's claim on a feed dead letter keeps the others off it: far longer than a
# produce and a ledger write take, short enough that a claimant that died is soon replaced.
CLAIM_MS = 60_000
SWEEP_TXN = 8000        # entitlements whose outputs go in one transaction (a commit costs round
                        # trips to two coordinators; per 2,000-entitlement chunk it slowed sweeps)


class Sweeper:
    def __init__(self, admission: Admission, store: StateStore, feed: IncidentFeed, emitter: Emitter,
                 gate: Gate, topic: str, pool: SweepPool | None,
                 reconcile: Callable[[int], Awaitable[int]],
                 retriage_waiting: Callable[[], Awaitable[None]],
                 fence: Callable[[], Commit], observer: Observer | None = None,
                 registry: RegistryWait | None = None,
                 claim: Callable[[list[str], int], Awaitable[set[str]]] | None = None):
        self.registry = registry or RegistryWait()
        self.observer = observer or Observer()   # sweep progress and time, reconciliation
        self.admission = admission
        self.store = store
        self.feed = feed
        self.emitter = emitter
        self.gate = gate
        self.topic = topic                     # the real entitlement topic (lineage of sweep remedies)
        self.pool = pool
        self._reconcile = reconcile
        self._retriage_waiting = retriage_waiting
        self._fence = fence                    # the owned entitlement offsets (see emitter.emit)
        self._claim = claim                    # (output ids, ttl ms) -> the ids this worker holds
        self._unclaimed: list[DeadLetter] = []  # feed dead letters another worker had claimed
        self.wanted = asyncio.Event()          # wakes the loop
        self.ready = asyncio.Event()           # the catch-up after the last assignment is done
        self._sweep_due = False                # a full sweep is owed (not just dead letters)
        self._catch_up_due = False             # partitions were assigned: reconcile first
        self._fenced = False                   # the group moved on during this sweep
        self._completed = False                # the last sweep ran to its end
        self._epoch = 0                        # counts revocations: a sweep sends only what it
                                               # decided for partitions it still owns
        self.sweeps_done = 0
        self._swept = 0                        # states read by the sweep in progress

    # ------------------------------------------------------------------ requests

    def window_changed(self, window: OutageWindow | None) -> None:
        """The feed accepted a revision (window) or queued a dead letter (None)."""
        if window is not None:
            self._sweep_due = True
        self.wanted.set()

    def partitions_revoked(self) -> None:
        """Decisions made before this moment are not this worker's to send any more."""
        self._epoch += 1

    def partitions_assigned(self) -> None:
        """Catch up before anything of the new assignment is decided, then sweep."""
        self._catch_up_due = True
        self.ready.clear()
        self._sweep_due = True
        self.wanted.set()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        await self.feed.caught_up.wait()
        # Everything librdkafka's wrappers and the libraries built at start-up lives as long as the
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
                    self.observer.reconciled(await retry_forever(
                        "in-flight reconciliation", lambda: self._reconcile(int(time.time() * 1000))))
                self.ready.set()
            if self._sweep_due:
                self._sweep_due = False
                try:
                    await self.sweep()
                    self.registry.resumed()
                except RegistryUnavailable as exc:   # a stored state's schema id: sweep again later
                    self._sweep_due = True
                    self.wanted.set()
                    await self.registry.pause("the sweep", exc)
                    continue
                await self._retriage_waiting()

    async def _feed_dead_letters(self, dead: list[DeadLetter]) -> None:
        """Publish the dead letters of bad windows this worker claims; keep the others and look
        again once their claims may have expired."""
        if self._claim is None:
            mine = {d.id for d in dead}
        else:
            claim = self._claim
            mine = await retry_forever("dead-letter claim", lambda: claim([d.id for d in dead], CLAIM_MS))
        self._unclaimed = [d for d in dead if d.id not in mine]
        if self._unclaimed:
            asyncio.get_running_loop().call_later(CLAIM_MS / 1000, self.wanted.set)
        if mine:
            async with self.gate.exclusive():
                await self.emitter.emit(Batch(dead=[d for d in dead if d.id in mine]))

    async def sweep(self) -> int:
        """Re-decide every stored entitlement of the partitions this worker owns."""
        self._fenced = False
        if not self.store.owned or not self.feed.histories:
            return 0
        # only the states some closed revision can remedy are read (worker.store.Selector)
        sel = selector(self.admission.policy, self.feed.histories.values())
        chunks = self.store.scan(sel, SWEEP_CHUNK)
        started = self.observer.sweep_started(len(self.store))
        self._completed = False
        self._swept = 0
        try:
            return await (self._sweep_in_pool(chunks) if self.pool is not None else self._sweep_here(chunks))
        finally:
            self.observer.sweep_finished(started, self._completed)

    async def _sweep_here(self, chunks: Iterator[list[bytes]]) -> int:
        produced = 0
        batch, held, epoch = Batch(), 0, self._epoch
        while True:
            if self._catch_up_due or self._fenced:
                return produced + await self._interrupted(self._swept)
            async with self.gate.lock:
                if self._epoch != epoch:     # partitions revoked since `batch` was decided: not ours to send
                    batch, held, epoch = Batch(), 0, self._epoch
                blobs = next(chunks, None)
                if blobs is None:
                    break
                self._swept += len(blobs)
                histories = list(self.feed.histories.values())
                for j in range(0, len(blobs), SWEEP_SLICE):
                    await asyncio.sleep(0)     # the previous transaction moves on meanwhile
                    decide_stored(self.admission, histories, self.topic, blobs[j:j + SWEEP_SLICE], batch)
                held += len(blobs)
                if held >= SWEEP_TXN:
                    # One emit in flight at a time, so in-flight marks and ledger checks stay as
                    # they were; deciding the next chunks overlaps this one's broker and Redis waits.
                    produced += await self.gate.settle()
                    self.gate.run_behind(self._emit(batch))
                    batch, held = Batch(), 0
            self.observer.sweep_progress(len(blobs))
        if held:
            async with self.gate.lock:
                if self._epoch == epoch:
                    produced += await self.gate.settle()
                    self.gate.run_behind(self._emit(batch))
        produced += await self.gate.settle()
        self._completed = True
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements, %d records published", self.sweeps_done, self._swept, produced)
        return produced

    async def _emit(self, batch: Batch) -> int:
        """A sweep transaction; when the group has moved on, the sweep stops (whoever owns the
        partitions now sweeps them on assignment, and so does this worker if they come back)."""
        fence = self._fence()
        if not fence[0]:       # nothing owned any more: nothing would fence it, so it is not sent
            self._fenced = True
            return 0
        try:
            return await self.emitter.emit(batch, fence=fence)
        except GroupFenced as exc:
            self._fenced = True
            log.warning("sweep transaction dropped: the group moved on (%s)", exc)
            return 0

    async def _interrupted(self, done: int) -> int:
        """A new assignment arrived (or the group moved on) mid-sweep: catch up first, then
        sweep again."""
        produced = await self.gate.settle()
        if self._fenced:
            log.info("sweep stopped after %d entitlements: the group moved on; waiting for an assignment", done)
        else:
            self._sweep_due = True
            log.info("sweep interrupted by a new assignment after %d entitlements", done)
        return produced

    async def _sweep_in_pool(self, chunks: Iterator[list[bytes]]) -> int:
        """The sweep with its decisions made in helper processes: chunks are decided ahead, a
        few at a time, and published in order, one transaction (of several chunks) at a time."""
        assert self.pool is not None
        histories = list(self.feed.histories.values())
        ahead = self.pool.processes + 1
        pending: collections.deque[asyncio.Future] = collections.deque()
        produced = 0
        more = True
        records: list = []
        remedies: list = []
        actions: dict = {}
        held, epoch = 0, self._epoch
        while more or pending:
            while more and len(pending) < ahead and not (self._catch_up_due or self._fenced):
                blobs = next(chunks, None)
                if blobs is None:
                    more = False
                    break
                self._swept += len(blobs)
                pending.append(self.pool.submit(histories, self.topic, blobs))
            if not pending:
                break
            chunk_records, chunk_remedies, chunk_actions, decided = await pending.popleft()
            if self._fenced:
                continue
            if self._epoch != epoch:         # partitions revoked since: those decisions are not ours
                records, remedies, actions, held, epoch = [], [], {}, 0, self._epoch
            records += chunk_records
            remedies += chunk_remedies
            actions.update(chunk_actions)
            held += decided
            self.observer.sweep_progress(decided)
            if held < SWEEP_TXN and (pending or more):
                continue
            async with self.gate.exclusive():
                fence = self._fence()
                try:
                    if fence[0] and self._epoch == epoch:
                        produced += await self.emitter.emit_encoded(records, remedies, actions, fence=fence)
                    else:
                        self._fenced = True
                except GroupFenced as exc:
                    self._fenced = True
                    log.warning("sweep transaction dropped: the group moved on (%s)", exc)
            records, remedies, actions, held = [], [], {}, 0
        if more:
            return produced + await self._interrupted(self._swept)
        self._completed = True
        self.sweeps_done += 1
        log.info("sweep %d: %d entitlements in %d processes, %d records published",
                 self.sweeps_done, self._swept, self.pool.processes, produced)
        return produced
