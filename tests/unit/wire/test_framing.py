"""#14: the registry framing in the codec, against confluent-kafka's in-memory mock registry and
a registry that does not answer."""
from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.errors import DecodeError, RegistryUnavailable
from streams.settings import ROOT, Settings
from streams.wire.codec import MAGIC, REGISTRY_FRAMING, SPEC_ORDER, Codec, SchemaRegistry
from streams.wire.framing import RegistryFraming, open_codec as _open_codec
from tests.samples import sample


# the library's in-memory registry (its module path moved between releases)
MockSchemaRegistryClient = type(SchemaRegistryClient.new_client({"url": "mock://probe"}))


class _Mock(MockSchemaRegistryClient):
    """confluent-kafka's in-memory registry, plus the per-subject compatibility it lacks."""

    def __init__(self, conf):
        super().__init__(conf)
        self.compatibility: dict[str, str] = {}

    def set_compatibility(self, subject_name=None, level=None):
        self.compatibility[subject_name] = level
        return {"compatibility": level}


@pytest.fixture
def settings() -> Settings:
    return Settings(schema_registry_url="", namespace="unit")


@pytest.fixture
def client(request):
    return _Mock({"url": f"mock://{request.node.name}"})


def open_codec(settings, client=None, **kw):
    return _open_codec(settings, client=client, **kw)


def test_writes_the_registry_framing_and_reads_both(settings, client):
    codec = open_codec(settings, client)
    plain = Codec.from_dir(ROOT / "schemas")
    record = sample("remedy_action")
    framed = codec.encode("remedy_action", record)
    single = plain.encode("remedy_action", record)
    assert framed[:1] == b"\x00" and single[:2] == MAGIC
    assert framed[5:] == single[10:]                      # the same Avro body
    assert codec.decode("remedy_action", framed) == codec.decode("remedy_action", single) == record
    assert codec.fingerprint_order(framed) == REGISTRY_FRAMING and codec.fingerprint_order(single) == SPEC_ORDER
    with pytest.raises(DecodeError, match="no schema registry is configured"):
        plain.decode("remedy_action", framed)


def test_registers_each_topic_subject_once_with_backward(settings, client):
    codec = open_codec(settings, client)
    assert client.compatibility["unit.remedy.actions.v1-value"] == "BACKWARD"
    again = open_codec(settings, client)
    assert again.header("remedy_action") == codec.header("remedy_action")


def test_unknown_ids_foreign_schemas_and_other_records_are_decode_errors(settings, client):
    codec = open_codec(settings, client)
    body = codec.encode("remedy_action", sample("remedy_action"))[5:]
    calls = []
    real_get = client.get_schema
    client.get_schema = lambda i, *a, **k: calls.append(i) or real_get(i, *a, **k)
    for _ in range(3):
        with pytest.raises(DecodeError, match="unknown schema id 99999"):
            codec.decode("remedy_action", b"\x00" + (99999).to_bytes(4, "big") + body)
    assert calls == [99999]                   # asked once, remembered
    other = client.register_schema("x-value", Schema(json.dumps({"type": "record", "name": "Other",
                                                                  "fields": [{"name": "a", "type": "int"}]}), "AVRO"))
    with pytest.raises(DecodeError, match="where makegood.v1.RemedyAction was expected"):
        codec.decode("remedy_action", b"\x00" + other.to_bytes(4, "big") + b"\x02")
    with pytest.raises(DecodeError, match="cut short"):
        codec.decode("remedy_action", b"\x00\x00\x01")


class _Down:
    """A registry that refuses connections `failures` times, then answers from `real`."""

    def __init__(self, real, failures: int):
        self.real, self.failures, self.calls = real, failures, 0

    def get_schema(self, schema_id):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("connection refused")
        return self.real.get_schema(schema_id)


def _fetching_codec(settings, client, failures: int, outage_wait):
    codec = open_codec(settings, client)
    registry = SchemaRegistry.from_dir(ROOT / "schemas")
    sleeps: list[float] = []
    framing = RegistryFraming(_Down(codec.framing.client, failures), registry, {},    # knows no id yet
                              outage_wait=outage_wait, sleep=sleeps.append)
    return codec, Codec(registry, framing), sleeps


def test_an_outage_is_waited_out_with_backoff(settings, client):
    writer, reader, sleeps = _fetching_codec(settings, client, failures=3, outage_wait=None)
    data = writer.encode("remedy_action", sample("remedy_action"))
    assert reader.decode("remedy_action", data) == sample("remedy_action")
    assert sleeps == [0.5, 1.0, 2.0]
    reader.decode("remedy_action", data)                 # cached: no further call
    assert reader.framing.client.calls == 4


def test_a_long_outage_fails_loudly_when_a_limit_is_set(settings, client):
    writer, reader, sleeps = _fetching_codec(settings, client, failures=100, outage_wait=5)
    data = writer.encode("remedy_action", sample("remedy_action"))
    with pytest.raises(RegistryUnavailable, match="unavailable"):
        reader.decode("remedy_action", data)
    assert not isinstance(RegistryUnavailable("x"), DecodeError)    # never a dead letter
    assert sum(sleeps) >= 5


def test_another_refusal_about_an_id_is_a_decode_error(settings, client):
    codec = open_codec(settings, client)
    body = codec.encode("remedy_action", sample("remedy_action"))[5:]

    def refuse(*_a, **_k):
        raise SchemaRegistryError(422, 42202, "invalid id")
    client.get_schema = refuse
    with pytest.raises(DecodeError, match="registry refused schema id 77"):
        codec.decode("remedy_action", b"\x00" + (77).to_bytes(4, "big") + body)


def test_a_server_error_is_an_outage_and_a_404_is_not():
    from streams.wire.framing import _is_outage
    assert _is_outage(SchemaRegistryError(503, 50003, "down"))
    assert _is_outage(ConnectionError("refused"))
    assert not _is_outage(SchemaRegistryError(404, 40403, "no such id"))
