"""A sweep decided in helper processes (streams/worker/sweeppool.py) owes exactly what the worker
would decide itself: same records, same bytes, same order; invalid stored records skipped."""
import asyncio
import dataclasses

import pytest

from processors.entitlements import decide_entitlement
from processors.model import EntitlementKind, Source
from processors.windows import IncidentHistory
from streams.decide.admit import Admission
from streams.decide.outputs import Batch, batch_outputs, encode_outputs
from streams.settings import ROOT
from streams.wire.codec import Codec
from streams.worker.store import pack_entitlement
from streams.settings import Settings
from streams.worker.sweeppool import SweepPool, decide_chunk
from tests.factories import DAY, HOUR, START, ent, reference, window

TOPIC = "x.entitlement.states.v1"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_dir(ROOT / "schemas")


def _states():
    out = []
    for i in range(60):
        e = ent(entitlement_id=f"E{i}", user_id=f"U{i // 3}", valid_until=START + (i % 7 - 2) * DAY,
                kind=EntitlementKind.SUBSCRIPTION if i % 2 else EntitlementKind.RENTAL,
                period_days=30 if i % 2 else 7)
        out.append(e)
    return out


def _histories():
    amended = window(revision=2, ended_at=window().ended_at + 5 * HOUR)
    return [IncidentHistory(()).accept(window()).accept(amended)]


def _blobs(codec, states):
    blobs = [pack_entitlement(i % 8, i, e, codec.encode_obj("entitlement_state", e))
             for i, e in enumerate(states)]
    invalid = dataclasses.replace(states[0], entitlement_id="bad", price_krw=-1)
    blobs.insert(5, pack_entitlement(0, 999, invalid, codec.encode_obj("entitlement_state", invalid)))
    blobs.insert(9, pack_entitlement(0, 998, states[0], b"not avro"))
    return blobs


def _expected(codec, policy, states, histories):
    batch = Batch()
    for i, e in enumerate(states):
        for h in histories:
            d = decide_entitlement(policy, h, e, Source(TOPIC, i % 8, i))
            if d.remedies or d.notices:
                batch.decisions.append(d)
    return encode_outputs(codec, batch_outputs(batch))


def test_decide_chunk_matches_the_in_worker_path(codec):
    policy, states, histories = reference(), _states(), _histories()
    got = decide_chunk(Admission(codec, policy), histories, TOPIC, _blobs(codec, states))
    expected = _expected(codec, policy, states, histories)
    assert got == expected and len(expected[0]) > 20 and expected[1]


def test_the_process_pool_returns_the_same_bytes(codec):
    policy, states, histories = reference(), _states(), _histories()
    pool = SweepPool(2, Settings(schema_registry_url=""), policy)   # no registry: single-object, as the codec above

    async def run():
        return await asyncio.gather(pool.submit(histories, TOPIC, _blobs(codec, states)[:30]),
                                    pool.submit(histories, TOPIC, _blobs(codec, states)[30:]))
    try:
        first, second = asyncio.run(run())
    finally:
        pool.close()
    records = first[0] + second[0]
    assert records == _expected(codec, policy, states, histories)[0]
