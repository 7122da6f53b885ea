"""Restoring entitlement states from the compacted topic (streams/worker/store.py), without Kafka:
the records a partition holds are folded in offset order exactly as the live path would have."""
import dataclasses

import pytest

from streams.decide.admit import Admission
from streams.kafka.reader import Raw
from streams.settings import ROOT
from streams.wire.codec import Codec
from streams.worker.store import (UNKNOWN_UPDATED_AT, StateStore, entitlement_header, entitlement_raw,
                                  restore_partition_states)
from tests.factories import ent, reference


@pytest.fixture(scope="module")
def store() -> StateStore:
    return StateStore(Admission(Codec.from_dir(ROOT / "schemas"), reference()))


def _raw(key, value, partition, offset):
    return Raw(partition, offset, key, value, None)


def _rec(store, e, offset, partition=3):
    return _raw(e.entitlement_id.encode(), store.admission.codec.encode_obj("entitlement_state", e), partition, offset)


def _restore(store, records):
    found: dict[bytes, bytes] = {}
    restore_partition_states(store.admission, records, found)
    return found


def test_a_key_seen_once_is_stored_undecoded_with_its_source(store):
    e = ent(entitlement_id="e1")
    found = _restore(store, [_rec(store, e, 7)])
    blob = found[b"e1"]
    assert entitlement_header(blob) == (3, 7, UNKNOWN_UPDATED_AT)
    assert store.admission.codec.decode_obj("entitlement_state", entitlement_raw(blob)) == e
    assert store.updated_at(blob) == e.updated_at      # decoded on demand


def test_the_newer_state_wins_whatever_the_offset_order(store):
    old = ent(entitlement_id="e1")
    new = dataclasses.replace(old, updated_at=old.updated_at + 60_000, price_krw=9900)
    later_new = _restore(store, [_rec(store, old, 1), _rec(store, new, 2)])
    assert store.admission.codec.decode_obj("entitlement_state", entitlement_raw(later_new[b"e1"])) == new
    # an older state published after a newer one does not replace it (as on arrival)
    later_old = _restore(store, [_rec(store, new, 1), _rec(store, old, 2)])
    assert entitlement_header(later_old[b"e1"])[1] == 1


def test_an_invalid_or_undecodable_record_never_replaces_a_valid_one(store):
    good = ent(entitlement_id="e1")
    bad = dataclasses.replace(good, updated_at=good.updated_at + 60_000, price_krw=-5)
    found = _restore(store, [_rec(store, good, 1), _rec(store, bad, 2), _raw(b"e1", b"not avro", 3, 3)])
    assert entitlement_header(found[b"e1"])[1] == 1


def test_an_invalid_state_stored_alone_gives_way_to_a_valid_one(store):
    bad = ent(entitlement_id="e1", price_krw=-5)
    good = dataclasses.replace(bad, price_krw=4900, updated_at=bad.updated_at - 60_000)
    found = _restore(store, [_rec(store, bad, 1), _rec(store, good, 2)])
    assert entitlement_header(found[b"e1"])[1] == 2


def test_a_tombstone_removes_the_key_and_a_keyless_record_is_ignored(store):
    e = ent(entitlement_id="e1")
    found = _restore(store, [_rec(store, e, 1), _raw(b"e1", None, 3, 2), _raw(None, b"x", 3, 3)])
    assert found == {}
    again = _restore(store, [_rec(store, e, 1), _raw(b"e1", None, 3, 2), _rec(store, e, 4)])
    assert entitlement_header(again[b"e1"])[1] == 4


def test_drop_partitions_keeps_the_others(store):
    s = StateStore(store.admission)
    s.put(b"a", 1, 0, 10, b"x")
    s.put(b"b", 2, 0, 10, b"y")
    assert s.drop_partitions({1}) == 1 and list(s.data) == [b"b"]
    assert s.is_stale(b"b", 9) and not s.is_stale(b"b", 10) and not s.is_stale(b"zz", 0)
