"""A transactional call that librdkafka never returns from (librdkafka#5456) is cut off: the
caller gets a fatal TransactionFailed and replaces the producer instead of waiting forever."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from streams.errors import TransactionFailed
from streams.kafka.producer import TransactionalProducer


def _bare_producer(hung_s: float) -> TransactionalProducer:
    # only what _bounded uses: no librdkafka handle, so no broker is needed
    p = TransactionalProducer.__new__(TransactionalProducer)
    p._txn_thread = ThreadPoolExecutor(1)
    p.hung_s = hung_s
    p.hung = False
    return p


def test_a_call_past_its_bound_is_fatal_and_marks_the_producer_hung():
    p = _bare_producer(0.2)
    release = threading.Event()
    with pytest.raises(TransactionFailed) as info:
        asyncio.run(p._bounded("send offsets", lambda: release.wait(10)))
    release.set()
    assert info.value.fatal and p.hung
    assert "send offsets: no answer within" in str(info.value)


def test_a_call_that_returns_in_time_is_not_touched():
    p = _bare_producer(5)
    done = []
    asyncio.run(p._bounded("commit", lambda: done.append(1)))
    assert done == [1] and not p.hung


def test_an_abort_that_hangs_after_a_failed_batch_makes_the_failure_fatal():
    """Seen after a broker restart: the batch failed, then its abort never returned; retrying
    with the same producer only ever gets _CONFLICT (an abort is in progress)."""
    p = _bare_producer(0.2)
    release = threading.Event()
    p._abort = lambda: release.wait(10)

    async def failing_batch(records):
        raise RuntimeError("1263 of 3954 records not delivered")

    p._call = TransactionalProducer._call.__get__(p)
    p._p = type("Handle", (), {"begin_transaction": staticmethod(lambda: None)})()   # begins, as librdkafka would
    p.send_batch = failing_batch
    with pytest.raises(TransactionFailed) as info:
        asyncio.run(p.transact([("t", b"k", b"v", None)]))
    release.set()
    assert info.value.fatal and p.hung
    assert isinstance(info.value.__cause__, RuntimeError)
