"""Bringing the on-disk store (worker.rocks) up to the group's committed offsets.

There is no changelog topic: entitlement.states.v1 is compacted, so it *is* every
entitlement's latest state. For each partition assigned, the store's checkpoint (the next
offset it has applied, written with the states) is compared with the group's committed offset:

- equal: nothing to read (a restart, or a partition handed back that nobody moved on);
- below: the tail [checkpoint, committed) is replayed (a restart after a crash between a
  transaction's commit and the store write, or a partition another worker held meanwhile);
- none, above the committed offset (the topic or the group was reset), or older than
  TAIL_TRUSTED_MS (compaction may since have removed tombstones the tail would have to
  replay): the partition is dropped and restored from offset 0.

A revoked partition's states stay on disk for a quick return (they cost disk, not memory);
the checkpoint decides on return whether they are still usable.

Records are folded in offset order as the live path would have: the newer `updated_at` wins,
an invalid record (dead-lettered when first consumed) never replaces a state, a tombstone
removes the key. Each chunk is written in one write batch with its checkpoint, so an
interrupted restore resumes where it stopped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

from processors.model import EntitlementState

from streams.decide.admit import Admission
from streams.errors import DecodeError
from streams.kafka.reader import Raw
from streams.worker import store as layout
from streams.worker.rocks import StateStore

log = logging.getLogger(__name__)

TAIL_TRUSTED_MS = 12 * 3_600_000     # well inside delete.retention.ms (24 h by default)


@dataclass(frozen=True)
class Plan:
    partition: int
    start: int              # first offset to read (0: a full restore)
    end: int                # the committed offset
    why: str

    @property
    def full(self) -> bool:
        return self.start == 0


def plan(partition: int, committed: int, checkpoint: tuple[int, int, int] | None, now_ms: int) -> Plan:
    """Where a partition's restore starts (see the module doc); `checkpoint`: the store's
    (next offset, written at ms, states)."""
    if checkpoint is None:
        return Plan(partition, 0, committed, "not in the store")
    offset, written = checkpoint[:2]
    if offset > committed:
        return Plan(partition, 0, committed, f"store at offset {offset}, past the committed {committed}")
    if offset < committed and now_ms - written > TAIL_TRUSTED_MS:
        return Plan(partition, 0, committed, f"store checkpoint {(now_ms - written) // 3_600_000} h old")
    return Plan(partition, offset, committed, "tail" if offset < committed else "current")


def stored_wins(admission: Admission, prev: bytes | None, ent: EntitlementState) -> bool:
    """Whether the stored state `prev` keeps its place against `ent`: the newer `updated_at`
    wins, and only a valid state can win. A restore stores a key's first value without
    validating it; an invalid one must neither replace nor hold off a valid state, as the batch
    evaluator never sees it. The stored value is decoded only when it is the newer one."""
    return prev is not None and layout.entitlement_header(prev)[2] > ent.updated_at and \
        admission.stored_state(layout.entitlement_raw(prev)) is not None


def fold(store: StateStore, admission: Admission, messages: Sequence[Raw]) -> int:
    """Fold a chunk of records (offset order per partition) into the store in one write
    batch, with each partition's checkpoint after its last record; returns records read.

    A key met once is stored from its plain Avro value (class, validity, updated_at) if the
    value's entitlement_id is its key, not validated further: it was checked (and dead-lettered
    if invalid) when first consumed, and a sweep validates what it decides. A key met again is
    settled as the live path settles it (`stored_wins`)."""
    staged = store.stage()
    last: dict[int, int] = {}
    keyed = [m for m in messages if m.key is not None]
    stored = store.get_many([(m.partition, m.key) for m in keyed])
    for m in messages:
        last[m.partition] = m.offset + 1
    decode = admission.codec.decode
    for m, found in zip(keyed, stored):
        key, value, p = m.key, m.value, m.partition
        prev = staged.seen.get(layout.state_key(p, key), found) if staged.seen else found
        if value is None:
            store.delete(staged, p, key, prev)
            continue
        if prev is None:
            try:
                d = decode("entitlement_state", value)
                if d["entitlement_id"].encode() != key:
                    continue            # keyed by another id: dead-lettered when consumed
                blob = layout.pack_decoded(p, m.offset, d, value)
            except (DecodeError, KeyError, TypeError, AttributeError):
                continue
        else:
            ent = admission.valid("entitlement_state", value, key)
            if ent is None:
                continue
            if stored_wins(admission, prev, ent):
                continue
            blob = layout.pack_entitlement(p, m.offset, ent, value)
        store.put(staged, p, key, blob, prev)
    store.apply(staged, last)
    return len(messages)
