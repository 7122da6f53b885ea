"""PartitionReader.watermarks while a partition's leader is not known yet or moving: asked
again, then one clear error; any other refusal is raised at once. No broker: librdkafka's
answers are replayed by a stand-in for the consumer's one call."""
from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.errors import ReadError
from streams.kafka import reader as reader_mod
from streams.kafka.reader import PartitionReader
from streams.settings import Settings


class _Answers:
    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

    def get_watermark_offsets(self, tp, timeout):
        self.calls += 1
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(a, int):
            raise KafkaException(KafkaError(a, "Broker: Not leader for partition"))
        return a

    def close(self):
        pass


def _reader(*answers) -> PartitionReader:
    r = PartitionReader(Settings(bootstrap="127.0.0.1:1", schema_registry_url=""))
    r.consumer.close()
    r.consumer = _Answers(*answers)
    return r


def test_a_moving_leader_is_asked_again(monkeypatch):
    monkeypatch.setattr(reader_mod.time, "sleep", lambda _s: None)
    r = _reader(KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, (0, 42))
    assert r.watermarks("t", 3) == (0, 42) and r.consumer.calls == 3


def test_a_leader_that_never_comes_is_one_read_error(monkeypatch):
    monkeypatch.setattr(reader_mod, "LEADER_WAIT_S", 0.0)
    monkeypatch.setattr(reader_mod.time, "sleep", lambda _s: None)
    r = _reader(KafkaError.NOT_LEADER_FOR_PARTITION)
    with pytest.raises(ReadError, match="no leader answered for t partition 3 on 127.0.0.1:1 within 0 s"):
        r.watermarks("t", 3)


def test_other_refusals_are_not_retried():
    r = _reader(KafkaError.TOPIC_AUTHORIZATION_FAILED, (0, 1))
    with pytest.raises(KafkaException):
        r.watermarks("t", 0)
    assert r.consumer.calls == 1
