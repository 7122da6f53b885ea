"""Delivery accounting of the one producer, without a broker: which failures are retried."""
from confluent_kafka import KafkaError

from streams.errors import PermanentProduceError, RetriableProduceError
from streams.kafka.producer import Deliveries, is_permanent


class _Msg:
    """What librdkafka hands a delivery callback: where the record landed, its key and value."""

    def __init__(self, record, partition=0, offset=0):
        self._record, self._p, self._o = record, partition, offset

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return self._record[1]

    def value(self):
        return self._record[2]


def _records(n):
    return [("t", f"k{i}".encode(), f"v{i}".encode(), None) for i in range(n)]


def test_a_fully_delivered_batch_settles_once_with_where_each_record_landed():
    settled = []
    recs = _records(3)
    d = Deliveries(recs, lambda: settled.append(True), track=True)
    for i in (2, 0, 1):
        d.callback(i)(None, _Msg(recs[i], i, 10 + i))
    assert settled == [True] and d.error() is None
    assert d.positions == [(0, 10), (1, 11), (2, 12)]


def test_an_empty_batch_is_settled_at_once():
    settled = []
    Deliveries([], lambda: settled.append(True))
    assert settled == [True]


def test_timeouts_and_leader_changes_are_retriable():
    recs = _records(2)
    d = Deliveries(recs)
    d.callback(1)(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION), _Msg(recs[1]))
    d.callback(0)(KafkaError(KafkaError._MSG_TIMED_OUT), _Msg(recs[0]))
    err = d.error()
    assert isinstance(err, RetriableProduceError)
    assert [(i, e.code()) for i, e in err.failures] == [(0, KafkaError._MSG_TIMED_OUT),
                                                        (1, KafkaError.NOT_LEADER_FOR_PARTITION)]
    assert "2 of 2 records not delivered" in str(err)


def test_too_large_not_authorised_and_unknown_topic_are_permanent():
    for code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                 KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        assert is_permanent(KafkaError(code)), code
    recs = _records(3)
    d = Deliveries(recs)
    d.callback(0)(None, _Msg(recs[0]))
    d.refused(2, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    d.callback(1)(KafkaError(KafkaError._MSG_TIMED_OUT), _Msg(recs[1]))
    err = d.error()
    # one permanent failure makes the batch permanent: retrying it whole could never succeed
    assert isinstance(err, PermanentProduceError)
    assert [(i, e.code()) for i, e in err.failures] == [(1, KafkaError._MSG_TIMED_OUT),
                                                        (2, KafkaError.MSG_SIZE_TOO_LARGE)]


def test_a_fatal_error_is_permanent():
    assert is_permanent(KafkaError(KafkaError._FENCED, fatal=True))
    assert not is_permanent(KafkaError(KafkaError._TRANSPORT))


def test_a_callback_that_raises_does_not_stop_the_poll_thread(caplog):
    """poll() re-raises what a delivery callback raised; the thread that settles every batch
    logs it and polls on, so the next batch still gets its delivery reports (here: timed out,
    nothing listens on the port) instead of waiting for them forever."""
    import pytest
    from streams.kafka.producer import Producer
    from streams.settings import Settings

    p = Producer(Settings(bootstrap="127.0.0.1:1", schema_registry_url=""), **{"message.timeout.ms": 300})
    try:
        def boom(err, msg):
            raise RuntimeError("a callback's bug")
        p._p.produce("t", b"v", b"k", on_delivery=boom)
        with pytest.raises(RetriableProduceError, match="_MSG_TIMED_OUT"):
            p.send_batch_sync(_records(2), timeout=20)
        assert p._poller.is_alive()
        assert "a delivery or error callback failed" in caplog.text
    finally:
        p._stop.set()
