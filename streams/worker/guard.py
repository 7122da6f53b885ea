"""The worker's part in guarded issuance: counting what held-back revisions would cost.

The approval gate (processors.approval, applied by the feed) needs the cost of every revision it
has not released, over every entitlement, and the entitlements are spread over the workers by
partition. So each worker counts its own partitions (a dry run of the walk over its stored states,
nothing produced) and writes one count per partition to Redis (ledger.estimates); the total is
frozen once every partition has been counted, and each worker's guard reads it back and hands it
to the feed (`set_total`), which releases the revision or keeps it held.

A worker counts a revision once per partition it owns (again for partitions assigned later, so a
rebalance mid-count leaves no partition uncounted), only after the catch-up of its assignment
(the store then holds every restored state), and between other work, a slice at a time under the
gate's lock, like a sweep. Before any consumer starts, the guard reads back the totals Redis
already has, so a restarted worker never decides against a history shorter than the cluster's.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from processors.approval import Cost, cost_from, upto
from processors.entitlements import decide_entitlement
from processors.model import Source

from streams.decide.admit import Admission
from streams.ledger.estimates import Estimates
from streams.worker.feed import IncidentFeed
from streams.worker.gate import Gate
from streams.worker.retry import retry_forever
from streams.worker.rocks import StateStore
from streams.worker.store import entitlement_header, entitlement_raw, selector

log = logging.getLogger(__name__)

POLL_S = 0.3
SLICE = 500


class Guard:
    def __init__(self, admission: Admission, store: StateStore, feed: IncidentFeed, gate: Gate,
                 estimates: Estimates, topic: str, ready: asyncio.Event,
                 on_change: Callable[[Any], None]):
        self.admission = admission
        self.store = store
        self.feed = feed
        self.gate = gate
        self.estimates = estimates
        self.topic = topic                  # the real entitlement topic (lineage in the dry run)
        self.ready = ready                  # the sweeper's: the catch-up after an assignment is done
        self.on_change = on_change          # the released view changed: sweep, re-triage
        self._counted: set[tuple[str, int, int]] = set()   # (incident, revision, partition) written

    def partitions_assigned(self) -> None:
        """Counts of partitions newly owned are owed (another worker's count may predate states
        this one restored; recounting is harmless until the total is frozen)."""
        self._counted.clear()

    async def run(self) -> None:
        await self.feed.read_up.wait()
        await self._collect()              # the totals the cluster already has, before anything is decided
        self.feed.caught_up.set()
        log.info("incident feed caught up: %d incidents, %d held", len(self.feed.raw), len(self.feed.held))
        while True:
            await asyncio.sleep(POLL_S)
            if self.feed.unestimated():
                if self.ready.is_set():
                    await self._count()
                await self._collect()

    async def _collect(self) -> None:
        wanted = self.feed.unestimated()
        if not wanted:
            return
        got = await retry_forever("estimate read", lambda: self.estimates.totals(wanted))
        changed = {i for (i, revision), cost in got.items() if self.feed.set_total(i, revision, cost)}
        state = {(h.incident_id, h.revision): h for h in self.feed.pending()}
        for (incident_id, revision), cost in got.items():
            h = state.get((incident_id, revision))
            log.info("incident %s revision %d would issue %d remedies, %d won: %s", incident_id, revision,
                     cost.remedies, cost.won, "released" if h is None else "held for approval" if h.state == "held"
                     else f"waits behind revision {h.behind}")
        for incident_id in sorted(changed):
            self.on_change(self.feed.raw[incident_id].latest)

    async def _count(self) -> None:
        """Count each unestimated revision over the owned partitions not counted yet."""
        for incident_id, revision in self.feed.unestimated():
            owned = set(self.store.owned)
            todo = {p for p in owned if (incident_id, revision, p) not in self._counted}
            if not todo:
                continue
            history = upto(self.feed.raw[incident_id], revision)
            parts = await self._dry_run(history, todo)
            if set(self.store.owned) != owned:     # a rebalance meanwhile: count again next time
                continue
            await retry_forever("estimate write", lambda: self.estimates.put(incident_id, revision, parts))
            self._counted.update((incident_id, revision, p) for p in todo)

    async def _dry_run(self, history, partitions: set[int]) -> dict[int, Cost]:
        """What the revision would issue to the states of `partitions`, decided but not emitted;
        the store's index skips the states no rule of the revision can reach."""
        rows: dict[int, list] = {p: [] for p in partitions}
        policy = self.admission.policy
        sel = selector(policy, [history])
        chunks = iter(()) if sel.empty else self.store.scan(sel, SLICE)
        while True:
            async with self.gate.lock:
                blobs = next(chunks, None)
                if blobs is None:
                    break
                for blob in blobs:
                    partition, offset, _ = entitlement_header(blob)
                    if partition not in rows:
                        continue
                    ent = self.admission.stored_state(entitlement_raw(blob))
                    if ent is None:
                        continue
                    decision = decide_entitlement(policy, history, ent, Source(self.topic, partition, offset))
                    rows[partition] += [(r.service, r.action.value, 1, r.amount_krw or 0) for r in decision.remedies]
            await asyncio.sleep(0)
        return {p: cost_from(r) for p, r in rows.items()}
