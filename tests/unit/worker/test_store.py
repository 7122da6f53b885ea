"""The on-disk entitlement store (streams/worker/store.py layout, rocks.py, restore.py) on a real
RocksDB in a temporary directory, without Kafka: key layout, staged writes and checkpoints,
restore folding, restore plans, and the sweep's selection."""
import dataclasses

import pytest

from processors.entitlements import decide_entitlement
from processors.model import BillingChannel, EntitlementKind, IncidentStatus, Source
from processors.windows import IncidentHistory
from streams.decide.admit import Admission
from streams.kafka.reader import Raw
from streams.settings import ROOT
from streams.wire.codec import Codec
from streams.worker import store as layout
from streams.worker.restore import TAIL_TRUSTED_MS, fold, plan, stored_wins
from streams.worker.rocks import StateStore
from tests.factories import DAY, HOUR, START, ent, reference, window

TOPIC = "t.entitlement.states.v1"


@pytest.fixture(scope="module")
def admission() -> Admission:
    return Admission(Codec.from_dir(ROOT / "schemas"), reference())


@pytest.fixture
def store(tmp_path, admission):
    s = StateStore(tmp_path / "stores", admission, TOPIC)
    s.open()
    yield s
    s.close()


def _rec(admission, e, offset, partition=3):
    return Raw(partition, offset, e.entitlement_id.encode(), admission.codec.encode_obj("entitlement_state", e), None)


def _state(store, key, partition=3):
    blob = store.get(partition, key)
    return None if blob is None else store.admission.codec.decode_obj("entitlement_state", layout.entitlement_raw(blob))


# ---------------------------------------------------------------- layout


def test_a_stored_value_carries_its_source_validity_class_and_bytes(admission):
    e = ent(entitlement_id="e1", service="melon", billing_channel=BillingChannel.CARRIER)
    raw = admission.codec.encode_obj("entitlement_state", e)
    blob = layout.pack_entitlement(3, 7, e, raw)
    assert layout.entitlement_header(blob) == (3, 7, e.updated_at)
    assert layout.entitlement_validity(blob) == (e.valid_from, e.valid_until)
    assert layout.stored_class(blob) == b"melon\x00SUBSCRIPTION\x00CARRIER\x00"
    assert layout.entitlement_raw(blob) == raw


def test_keys_sort_by_partition_so_a_partition_is_one_range():
    lo, hi = layout.partition_range(b"s", 2)
    assert lo <= layout.state_key(2, b"") and layout.state_key(2, b"\xff" * 40) < hi
    assert layout.state_key(1, b"\xff" * 40) < lo <= hi <= layout.state_key(3, b"")
    cls = b"melon\x00RENTAL\x00WEB\x00"
    assert layout.index_key(2, cls, b"e1").startswith(b"x" + layout.part(2) + cls)


# ---------------------------------------------------------------- staged writes, checkpoints


def test_a_staged_batch_is_read_back_by_itself_and_written_only_on_apply(store, admission):
    e = ent(entitlement_id="e1")
    staged = store.stage()
    store.put(staged, 3, b"e1", layout.pack_entitlement(3, 5, e, b"raw"), None)
    assert store.get(3, b"e1", staged) is not None
    assert store.get(3, b"e1") is None and store.checkpoint(3) is None    # an aborted batch leaves nothing
    store.apply(staged, {3: 6})
    assert store.get(3, b"e1") is not None and store.checkpoint(3)[0] == 6


def test_a_class_change_moves_the_index_entry_and_a_delete_removes_both(store, admission):
    old = ent(entitlement_id="e1", service="melon")
    new = dataclasses.replace(old, service="kakaotv", kind=EntitlementKind.VOD_PASS, updated_at=old.updated_at + 1)
    fold(store, admission, [_rec(admission, old, 0), _rec(admission, new, 1)])
    index = [k for k in store.db.keys(from_key=b"x") if k.startswith(b"x")]
    assert index == [layout.index_key(3, layout.entitlement_class(new), b"e1")]
    store.owned = {3}
    assert len(store) == 1
    fold(store, admission, [Raw(3, 2, b"e1", None, None)])
    assert [k for k in store.db.keys() if k[:1] in (b"s", b"x")] == []
    assert store.checkpoint(3)[0] == 3 and len(store) == 0


def test_a_store_survives_a_reopen_and_a_second_opener_gets_its_own_slot(tmp_path, admission):
    a = StateStore(tmp_path / "stores", admission, TOPIC)
    first = a.open()
    fold(a, admission, [_rec(admission, ent(entitlement_id="e1"), 0)])
    b = StateStore(tmp_path / "stores", admission, TOPIC)
    assert b.open() != first               # the first slot is locked by a running store
    b.close()
    a.close()
    again = StateStore(tmp_path / "stores", admission, TOPIC)
    assert again.open() == first and again.get(3, b"e1") is not None and again.checkpoint(3)[:1] == (1,)
    again.owned = {3}
    assert len(again) == 1                     # the count is kept in the checkpoint
    again.close()


def test_a_corrupt_or_foreign_store_is_rebuilt_empty_with_a_warning(tmp_path, admission, caplog):
    a = StateStore(tmp_path / "stores", admission, TOPIC)
    path = a.open()
    fold(a, admission, [_rec(admission, ent(entitlement_id="e1"), 0)])
    a.close()
    for f in path.glob("MANIFEST-*"):
        f.write_bytes(b"garbage")
    b = StateStore(tmp_path / "stores", admission, TOPIC)
    assert b.open() == path
    assert b.get(3, b"e1") is None and b.checkpoint(3) is None
    assert "moved aside and rebuilt" in caplog.text
    b.close()
    other = StateStore(tmp_path / "stores", admission, "other.topic")
    other.open()
    assert "not 'makegood-entitlements-1 other.topic'" in caplog.text
    other.close()


# ---------------------------------------------------------------- restore


def test_the_newer_state_wins_whatever_the_offset_order(store, admission):
    old = ent(entitlement_id="e1")
    new = dataclasses.replace(old, updated_at=old.updated_at + 60_000, price_krw=9900)
    fold(store, admission, [_rec(admission, old, 1), _rec(admission, new, 2)])
    assert _state(store, b"e1") == new
    fold(store, admission, [_rec(admission, old, 3)])     # older, published later: does not replace it
    assert _state(store, b"e1") == new


def test_an_invalid_record_never_replaces_a_valid_one_and_a_keyless_one_is_ignored(store, admission):
    good = ent(entitlement_id="e1")
    bad = dataclasses.replace(good, updated_at=good.updated_at + 60_000, price_krw=-5)
    fold(store, admission, [_rec(admission, good, 1), _rec(admission, bad, 2), Raw(3, 3, b"e1", b"not avro", None),
                            Raw(3, 4, None, b"x", None)])
    assert _state(store, b"e1") == good and store.checkpoint(3)[0] == 5


def test_only_a_valid_newer_stored_state_holds_off_an_arriving_one(store, admission):
    """The live path and the restore settle a key by the same rule: an invalid state a restore
    stored undecoded (say, updated in the year 2300) does not make a valid one stale."""
    valid = ent(entitlement_id="e1")
    newer = dataclasses.replace(valid, updated_at=valid.updated_at + 60_000)
    absurd = dataclasses.replace(valid, updated_at=valid.updated_at + 60_000, price_krw=-5)
    fold(store, admission, [_rec(admission, absurd, 1)])          # first of its key: stored as it is
    assert store.get(3, b"e1") is not None
    assert not stored_wins(admission, store.get(3, b"e1"), valid)
    assert not stored_wins(admission, None, valid)
    fold(store, admission, [_rec(admission, newer, 2)])
    assert stored_wins(admission, store.get(3, b"e1"), valid)
    assert not stored_wins(admission, store.get(3, b"e1"), newer)    # equal: the later record wins


def test_a_state_keyed_by_another_id_is_never_stored_first_or_later(store, admission):
    """The live path dead-letters a state whose key is not its entitlement_id; a restore must
    not store it either, whether it is the key's first record or replaces one."""
    good = ent(entitlement_id="e1")
    flipped = dataclasses.replace(good, entitlement_id="e3", updated_at=good.updated_at + 60_000)
    mangled = admission.codec.encode_obj("entitlement_state", flipped)
    fold(store, admission, [Raw(3, 1, b"e2", mangled, None)])
    assert store.get(3, b"e2") is None and store.get(3, b"e3") is None
    fold(store, admission, [_rec(admission, good, 2), Raw(3, 3, b"e1", mangled, None)])
    assert _state(store, b"e1") == good and store.get(3, b"e3") is None and store.checkpoint(3)[0] == 4


def test_restore_plans_read_only_what_the_store_lacks():
    now = START
    assert plan(0, 100, None, now).start == 0                               # never stored: all
    assert (plan(0, 100, (100, now, 5), now).start, plan(0, 100, (100, now, 5), now).why) == (100, "current")
    assert plan(0, 100, (60, now, 5), now).start == 60                     # the tail only
    assert plan(0, 100, (160, now, 5), now).full                           # past the group: reset
    assert plan(0, 100, (60, now - TAIL_TRUSTED_MS - 1, 5), now).full       # tombstones may be gone


# ---------------------------------------------------------------- sweep selection


def _history(*revisions):
    h = IncidentHistory(())
    for r in revisions:
        h = h.accept(r)
    return h


def test_the_selector_names_only_classes_a_closed_revision_and_a_rule_can_remedy():
    policy = reference()
    sel = layout.selector(policy, [_history(window(services=("melon", "kakaotv")))])
    assert set(sel.classes) == {b"melon\x00SUBSCRIPTION\x00" + c.value.encode() + b"\x00" for c in BillingChannel} | \
        {b"kakaotv\x00VOD_PASS\x00" + c.value.encode() + b"\x00" for c in BillingChannel}
    assert layout.selector(policy, [_history(window(status=IncidentStatus.OPEN))]).empty


def test_the_selector_never_skips_a_state_that_is_owed_something():
    """Against every class and a spread of validity spans: a skipped state decides to nothing."""
    policy = reference()
    w1 = window(services=("melon", "gift", "kakaotalk"))
    w2 = window(revision=2, services=("melon", "gift"), ended_at=w1.ended_at + 5 * HOUR)
    retracted = window(revision=3, status=IncidentStatus.RETRACTED, services=("melon",))
    for hist in (_history(w1), _history(w1, w2), _history(w1, w2, retracted)):
        sel = layout.selector(policy, [hist])
        for service in ("melon", "gift", "kakaotalk", "kakaotv", "shopping"):
            for kind in EntitlementKind:
                for ch in BillingChannel:
                    for vf, vu in ((-40, -20), (-40, 0), (-10, 20), (0, 1), (2, 40), (-400, 400)):
                        e = ent(service=service, kind=kind, billing_channel=ch,
                                valid_from=START + vf * DAY, valid_until=START + vu * DAY)
                        d = decide_entitlement(policy, hist, e, Source(TOPIC, 0, 0))
                        picked = layout.entitlement_class(e) in sel.classes and sel.admits(e.valid_from, e.valid_until)
                        assert picked or not (d.remedies or d.notices), (service, kind, ch, vf, vu)


def test_a_scan_reads_only_owned_partitions_and_selected_classes(store, admission):
    states = [ent(entitlement_id=f"e{i}", service=("melon", "kakaotv", "kakaopage")[i % 3],
                  kind=(EntitlementKind.SUBSCRIPTION, EntitlementKind.VOD_PASS, EntitlementKind.RENTAL)[i % 3],
                  valid_until=START + (20 if i % 5 else -30) * DAY) for i in range(300)]
    for p in (1, 2):
        fold(store, admission, [_rec(admission, e, i, partition=p) for i, e in enumerate(states)])
    store.owned = {2}
    sel = layout.selector(admission.policy, [_history(window(services=("melon",)))])
    got = [b for chunk in store.scan(sel, 7) for b in chunk]
    decoded = [admission.codec.decode_obj("entitlement_state", layout.entitlement_raw(b)) for b in got]
    assert {layout.entitlement_header(b)[0] for b in got} == {2}
    assert sorted(e.entitlement_id for e in decoded) == sorted(
        e.entitlement_id for e in states if e.service == "melon" and e.valid_until > START)
