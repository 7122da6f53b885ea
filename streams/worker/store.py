"""The worker's entitlement store: the latest valid state of every entitlement it owns.

Value format: header (source partition, source offset, updated_at) + the Avro bytes as
received. The header lets a sweep pick its own partitions and lets "newer wins" compare
versions without decoding the record; a state restored from the topic without decoding it has
updated_at UNKNOWN_UPDATED_AT until needed.

There is no changelog topic: entitlement.states.v1 is compacted, so it *is* every
entitlement's latest state, and a newly assigned partition is restored from it
(`restore_partition_states` folds what the consumer reads back).
"""
from __future__ import annotations

import struct
from typing import Iterable, Sequence

from streams.decide.admit import Admission
from streams.kafka.reader import Raw

_ENT_HEADER = struct.Struct(">HQq")
UNKNOWN_UPDATED_AT = -(2 ** 63)


def pack_entitlement(partition: int, offset: int, updated_at: int, raw: bytes) -> bytes:
    return _ENT_HEADER.pack(partition, offset, updated_at) + raw


def entitlement_header(blob: bytes) -> tuple[int, int, int]:
    """(source partition, source offset, updated_at) of a stored entitlement."""
    return _ENT_HEADER.unpack_from(blob)


def entitlement_raw(blob: bytes) -> bytes:
    return blob[_ENT_HEADER.size:]


class StateStore:
    """key (entitlement_id) -> packed state, for the partitions this worker owns (`owned`)."""

    def __init__(self, admission: Admission):
        self.admission = admission
        self.data: dict[bytes, bytes] = {}
        self.owned: set[int] = set()

    def __len__(self) -> int:
        return len(self.data)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def updated_at(self, blob: bytes) -> int:
        """updated_at of a stored state (decoded when the restore did not need to know it)."""
        ts = entitlement_header(blob)[2]
        if ts == UNKNOWN_UPDATED_AT:
            ts = self.admission.codec.decode_obj("entitlement_state", entitlement_raw(blob)).updated_at
        return ts

    def is_stale(self, key: bytes, updated_at: int) -> bool:
        """A newer state of this entitlement is already stored."""
        prev = self.data.get(key)
        return prev is not None and self.updated_at(prev) > updated_at

    def put(self, key: bytes, partition: int, offset: int, updated_at: int, raw: bytes) -> None:
        self.data[key] = pack_entitlement(partition, offset, updated_at, raw)

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def assign(self, owned: set[int], kept: set[int], restored: dict[bytes, bytes], partitions: int) -> int:
        """Own `owned` now: drop the states of partitions not kept, add the restored ones;
        returns how many states were dropped."""
        dropped = self.drop_partitions(set(range(partitions)) - kept)
        self.data.update(restored)
        self.owned = set(owned)
        return dropped

    def drop_partitions(self, partitions: set[int]) -> int:
        gone = [k for k, v in self.data.items() if entitlement_header(v)[0] in partitions]
        for k in gone:
            del self.data[k]
        return len(gone)

    def owned_keys(self) -> list[bytes]:
        """Keys of the states in owned partitions (keys only: a sweep reads each state when its
        turn comes, so it decides the latest one, and 1M tuples are not held for the GC)."""
        owned = self.owned
        return [k for k, v in list(self.data.items()) if entitlement_header(v)[0] in owned]

    def owned_blobs(self, keys: Sequence[bytes]) -> list[bytes]:
        """The stored states of `keys` still here (not deleted by a tombstone) and still in a
        partition this worker owns (a partition revoked mid-sweep is its new owner's)."""
        data, owned = self.data, self.owned
        return [b for k in keys if (b := data.get(k)) is not None and entitlement_header(b)[0] in owned]


def restore_partition_states(admission: Admission, messages: Iterable[Raw], found: dict[bytes, bytes]) -> None:
    """Fold a chunk of records, read in offset order, into `found`.

    The last record of a key wins (compaction), except that a state older than the stored one
    (by updated_at) or an invalid one never replaces a valid one; a tombstone removes the key."""
    for m in messages:
        key, value = m.key, m.value
        if key is None:
            continue
        if value is None:
            found.pop(key, None)
            continue
        prev = found.get(key)
        if prev is None:
            found[key] = pack_entitlement(m.partition, m.offset, UNKNOWN_UPDATED_AT, value)
            continue
        # seen twice: decide which one stands, as the live path would have (it never stored an
        # invalid state, and a newer updated_at wins)
        ent = admission.valid("entitlement_state", value)
        if ent is None:
            continue
        prev_ent = admission.valid("entitlement_state", entitlement_raw(prev))
        if prev_ent is None or prev_ent.updated_at <= ent.updated_at:
            found[key] = pack_entitlement(m.partition, m.offset, ent.updated_at, value)
