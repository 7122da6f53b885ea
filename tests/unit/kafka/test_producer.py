"""Delivery accounting of the one producer, without a broker: which failures are retried."""
from confluent_kafka import KafkaError

from streams.errors import PermanentProduceError, RetriableProduceError
from streams.kafka.producer import Deliveries, is_permanent


class _Msg:
    def __init__(self, partition, offset):
        self._p, self._o = partition, offset

    def partition(self):
        return self._p

    def offset(self):
        return self._o


def test_a_fully_delivered_batch_settles_once_with_where_each_record_landed():
    settled = []
    d = Deliveries(3, lambda: settled.append(True))
    for i in (2, 0, 1):
        d.on_delivery(i)(None, _Msg(i, 10 + i))
    assert settled == [True] and d.error(3) is None
    assert d.positions == [(0, 10), (1, 11), (2, 12)]


def test_an_empty_batch_is_settled_at_once():
    settled = []
    Deliveries(0, lambda: settled.append(True))
    assert settled == [True]


def test_timeouts_and_leader_changes_are_retriable():
    d = Deliveries(2)
    d.on_delivery(0)(KafkaError(KafkaError._MSG_TIMED_OUT), None)
    d.on_delivery(1)(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION), None)
    err = d.error(2)
    assert isinstance(err, RetriableProduceError) and [i for i, _ in err.failures] == [0, 1]
    assert "2 of 2 records not delivered" in str(err)


def test_too_large_not_authorised_and_unknown_topic_are_permanent():
    for code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.TOPIC_AUTHORIZATION_FAILED,
                 KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        assert is_permanent(KafkaError(code)), code
    d = Deliveries(3)
    d.on_delivery(0)(None, _Msg(0, 1))
    d.refused(2, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    d.on_delivery(1)(KafkaError(KafkaError._MSG_TIMED_OUT), None)
    err = d.error(3)
    # one permanent failure makes the batch permanent: retrying it whole could never succeed
    assert isinstance(err, PermanentProduceError)
    assert [(i, e.code()) for i, e in err.failures] == [(1, KafkaError._MSG_TIMED_OUT),
                                                        (2, KafkaError.MSG_SIZE_TOO_LARGE)]


def test_a_fatal_error_is_permanent():
    assert is_permanent(KafkaError(KafkaError._FENCED, fatal=True))
    assert not is_permanent(KafkaError(KafkaError._TRANSPORT))
