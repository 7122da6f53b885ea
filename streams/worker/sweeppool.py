"""Deciding a sweep in helper processes: one worker, more than one core.

A sweep re-decides every stored entitlement of the worker's partitions when a window changes.
Per entitlement that is pure CPU (decode, validate, decide, encode the outputs: ~45 us in
Python), and processors/ is pure, so chunks of stored records can be decided in other
processes. The worker keeps everything that touches Kafka and Redis: it hands out chunks of raw
records, and publishes each chunk's encoded outputs through the emitter in chunk order (ledger
check, in-flight mark, produce, ack, ledger write, one emit at a time), so the guarantee is the
one every other path gives.

Off by default (`MAKEGOOD_SWEEP_PROCESSES=0`): a machine that runs several workers already uses
its cores. Processes are started with `spawn` (the worker has librdkafka threads, which
a forked child must not inherit) when the worker starts; they exit with the worker.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

from processors.model import Source
from processors.policy import Policy
from processors.windows import IncidentHistory

from streams.decide.admit import Admission
from streams.decide.entitlements import owed
from streams.decide.outputs import Batch, Record, batch_outputs, encode_outputs
from streams.ledger.store import RemedyEntry
from streams.settings import Settings
from streams.wire.framing import open_codec
from streams.worker.store import entitlement_header, entitlement_raw

log = logging.getLogger(__name__)
_admission: Admission | None = None


def _init(settings: Settings, policy: Policy) -> None:
    global _admission
    # the worker's own framing: registry ids resolved (and cached) in each helper process
    _admission = Admission(open_codec(settings), policy)


def decide_stored(admission: Admission, histories: Sequence[IncidentHistory], topic: str,
                  blobs: Sequence[bytes], batch: Batch) -> None:
    """Add to `batch` what stored entitlements (worker.store blobs) are owed under the given
    incident histories: the sweep's decisions, in the worker or in a helper process. Invalid
    stored records are skipped (restored states are stored undecoded; they were dead-lettered
    when first consumed); a decision that fails is logged, never raised, so one bad record
    cannot stop a sweep."""
    policy = admission.policy
    for blob in blobs:
        partition, offset, _ = entitlement_header(blob)
        ent = admission.stored_state(entitlement_raw(blob))
        if ent is None:
            continue
        try:
            owed(policy, histories, ent, Source(topic, partition, offset), batch)
        except Exception:  # noqa: BLE001
            log.exception("sweep: entitlement %s failed", ent.entitlement_id)


def decide_chunk(admission: Admission, histories: Sequence[IncidentHistory], topic: str,
                 blobs: Sequence[bytes]) -> tuple[list[Record], list[RemedyEntry]]:
    """The encoded outputs owed to a chunk of stored entitlements (see decide_stored)."""
    batch = Batch()
    decide_stored(admission, histories, topic, blobs, batch)
    return encode_outputs(admission.codec, batch_outputs(batch))


def _ready() -> bool:
    return _admission is not None


Decided = tuple[list[Record], list[RemedyEntry], dict[str, tuple[str, int]], int]


def _decide_in_child(histories: Sequence[IncidentHistory], topic: str, blobs: Sequence[bytes]) -> Decided:
    """The chunk's encoded outputs, each remedy's (action, won) by id for the worker's metrics
    (it never decodes what it publishes), and how many stored entitlements the chunk held."""
    assert _admission is not None
    batch = Batch()
    decide_stored(_admission, histories, topic, blobs, batch)
    actions = {r.remedy_id: (r.action.value, r.amount_krw or 0) for d in batch.decisions for r in d.remedies}
    records, remedies = encode_outputs(_admission.codec, batch_outputs(batch))
    return records, remedies, actions, len(blobs)


class SweepPool:
    def __init__(self, processes: int, settings: Settings, policy: Policy):
        self.processes = processes
        self._args = (settings, policy)
        self._pool: ProcessPoolExecutor | None = None

    def _ensure(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init, initargs=self._args)
        return self._pool

    async def start(self) -> None:
        """Spawn the processes now (about a second each here), not in the first sweep."""
        pool = self._ensure()
        await asyncio.gather(*(asyncio.wrap_future(pool.submit(_ready)) for _ in range(self.processes)))

    def submit(self, histories: Sequence[IncidentHistory], topic: str,
               blobs: Sequence[bytes]) -> asyncio.Future:
        return asyncio.wrap_future(self._ensure().submit(_decide_in_child, list(histories), topic, list(blobs)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
