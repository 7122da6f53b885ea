"""The entitlement store's layout: keys, the stored value, and what a sweep may skip.

One worker's states live in an on-disk RocksDB (worker.rocks); this module is the part of it
that is plain bytes and arithmetic, so it is tested without a database.

Keys (partition: the source partition of entitlement.states.v1, 2 bytes big-endian, so each
partition is one contiguous range and is dropped with one range delete):
- `s` partition entitlement_id                      -> the stored state (below)
- `x` partition service 0 kind 0 channel 0 entitlement_id -> b"" (the sweep index: a sweep
  reads only the (service, kind, channel) classes a window and the policy can touch)
- `m` partition -> the partition's checkpoint: the next offset to read, when it was written
  (ms) and how many states the partition holds, written in the same write batch as the states
- `M` -> the store's format and the topic it holds

Stored value: header (source partition, source offset, updated_at, valid_from, valid_until),
the class (service 0 kind 0 channel), then the Avro bytes as received. The header lets the
live path compare versions ("newer wins") and a sweep drop states whose validity cannot meet
any window, without decoding the record.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

from processors.model import BillingChannel, EntitlementKind, EntitlementState, IncidentStatus
from processors.policy import Policy
from processors.windows import IncidentHistory

_HEADER = struct.Struct(">HQqqqH")     # partition, offset, updated_at, valid_from, valid_until, len(class)
_PART = struct.Struct(">H")
_CHECKPOINT = struct.Struct(">qqq")    # next offset, written at (ms), states stored
FORMAT = b"makegood-entitlements-1"
META = b"M"


def class_of(service: str, kind: str, channel: str) -> bytes:
    """The sweep index's class of a state: service, kind and billing channel."""
    return b"%s\x00%s\x00%s\x00" % (service.encode(), kind.encode(), channel.encode())


def entitlement_class(ent: EntitlementState) -> bytes:
    return class_of(ent.service, ent.kind.value, ent.billing_channel.value)


def pack_state(partition: int, offset: int, updated_at: int, valid_from: int, valid_until: int, cls: bytes,
               raw: bytes) -> bytes:
    return _HEADER.pack(partition, offset, updated_at, valid_from, valid_until, len(cls)) + cls + raw


def pack_entitlement(partition: int, offset: int, ent: EntitlementState, raw: bytes) -> bytes:
    return pack_state(partition, offset, ent.updated_at, ent.valid_from, ent.valid_until,
                      entitlement_class(ent), raw)


def pack_decoded(partition: int, offset: int, d: dict, raw: bytes) -> bytes:
    """pack_entitlement from the plain Avro value (a restore decodes no further)."""
    return pack_state(partition, offset, d["updated_at"], d["valid_from"], d["valid_until"],
                      class_of(d["service"], d["kind"], d["billing_channel"]), raw)


def entitlement_header(blob: bytes) -> tuple[int, int, int]:
    """(source partition, source offset, updated_at) of a stored entitlement."""
    return _HEADER.unpack_from(blob)[:3]


def entitlement_validity(blob: bytes) -> tuple[int, int]:
    """(valid_from, valid_until) of a stored entitlement."""
    return _HEADER.unpack_from(blob)[3:5]


def stored_class(blob: bytes) -> bytes:
    n = _HEADER.unpack_from(blob)[5]
    return blob[_HEADER.size:_HEADER.size + n]


def entitlement_raw(blob: bytes) -> bytes:
    return blob[_HEADER.size + _HEADER.unpack_from(blob)[5]:]


def part(partition: int) -> bytes:
    return _PART.pack(partition)


def state_key(partition: int, key: bytes) -> bytes:
    return b"s" + _PART.pack(partition) + key


def index_key(partition: int, cls: bytes, key: bytes) -> bytes:
    return b"x" + _PART.pack(partition) + cls + key


def checkpoint_key(partition: int) -> bytes:
    return b"m" + _PART.pack(partition)


def pack_checkpoint(offset: int, written_ms: int, states: int) -> bytes:
    return _CHECKPOINT.pack(offset, written_ms, states)


def unpack_checkpoint(value: bytes) -> tuple[int, int, int]:
    """(next offset, written at ms, states stored) of a partition."""
    return _CHECKPOINT.unpack(value)


def partition_range(prefix: bytes, partition: int) -> tuple[bytes, bytes]:
    """[begin, end) of every key of one partition under `prefix` (b"s", b"x" or b"m")."""
    return prefix + _PART.pack(partition), prefix + _PART.pack(partition + 1)


@dataclass(frozen=True)
class Selector:
    """What a sweep reads: the classes some rule can remedy for some closed revision of an
    incident, and the validity span that can meet one of those revisions (or a rule's fixed
    instant). Anything else decides to nothing, so it is not read or decoded."""
    classes: tuple[bytes, ...]
    valid_lo: int          # a state whose valid_until is below this cannot be eligible
    valid_hi: int          # nor one whose valid_from is above this

    def admits(self, valid_from: int, valid_until: int) -> bool:
        return valid_until >= self.valid_lo and valid_from <= self.valid_hi

    @property
    def empty(self) -> bool:
        return not self.classes


def selector(policy: Policy, histories: Iterable[IncidentHistory]) -> Selector:
    """The Selector of a sweep under `policy` against `histories` (processors.entitlements:
    a revision remedies only services it names, and only once it is closed; a retraction
    reverses only what a closed revision remedied)."""
    services: set[str] = set()
    incidents: set[str] = set()
    lo, hi = None, None
    for h in histories:
        closed = [r for r in h.revisions if r.status is not IncidentStatus.OPEN and r.ended_at is not None]
        if not closed or h.incident_id is None:
            continue
        incidents.add(h.incident_id)
        for r in closed:
            services.update(r.services)
            lo = r.started_at if lo is None else min(lo, r.started_at)
            hi = r.ended_at if hi is None else max(hi, r.ended_at)
    classes = []
    for service in sorted(services):
        for kind in EntitlementKind:
            for channel in BillingChannel:
                rules = [r for r in policy.rules_for(service, kind, channel)
                         if any(r.applies_to(i) for i in incidents)]
                if not rules:
                    continue
                for r in rules:
                    if r.active_at is not None:
                        lo = r.active_at if lo is None else min(lo, r.active_at)
                        hi = r.active_at if hi is None else max(hi, r.active_at)
                classes.append(class_of(service, kind.value, channel.value))
    if lo is None or hi is None:
        return Selector((), 0, -1)
    return Selector(tuple(classes), lo, hi)
