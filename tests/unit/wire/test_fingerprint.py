"""#17: the single-object header carries the CRC-64-AVRO fingerprint little-endian, as the Avro
specification says, checked against values that are not makegood's own; records written before
#17 (fingerprint bytes reversed) stay readable.

The specification (https://avro.apache.org/docs/current/specification/, "Single object encoding"):
`C3 01`, then "the 8-byte little-endian CRC-64-AVRO fingerprint of the object's schema", then the
Avro binary body. CRC-64-AVRO is the spec's 64-bit Rabin fingerprint ("Schema Fingerprints"),
computed below from the spec's description, independently of fastavro.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.errors import CodecError, DecodeError
from streams.settings import ROOT
from streams.wire.codec import (MAGIC, REVERSED_ORDER, SPEC_ORDER, Codec, SchemaRegistry,
                                schema_fingerprint)
from tests.legacy_wire import PreFixCodec, reversed_header
from tests.samples import sample

SCHEMAS = sorted(p.stem for p in (ROOT / "schemas").glob("*.avsc"))

# ------------------------------------------------------------------- CRC-64-AVRO, from the spec

EMPTY = 0xC15D213AA4D7A795      # the spec's EMPTY: the fingerprint of no bytes, and the polynomial


def _table() -> list[int]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY if fp & 1 else 0)
        table.append(fp)
    return table


TABLE = _table()


def crc64_avro(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp


def unsigned(java_long: int) -> int:
    return java_long & 0xFFFF_FFFF_FFFF_FFFF


# Schema, Parsing Canonical Form and fingerprint (a Java signed long, from
# SchemaNormalization.parsingFingerprint64) from Apache Avro's shared test data,
# share/test/data/schema-tests.txt (case numbers as there). Case 026's published input has
# "default":"true" (a string) for a boolean, which fastavro rightly rejects; it is `true` here
# (defaults are not part of the canonical form, so the fingerprint is unchanged).
PUBLISHED = [
    ("000", '"null"', '"null"', 7195948357588979594),
    ("002", '"boolean"', '"boolean"', -6970731678124411036),
    ("004", '"int"', '"int"', 8247732601305521295),
    ("006", '"long"', '"long"', -3434872931120570953),
    ("014", '"string"', '"string"', -8142146995180207161),
    ("016", '[  ]', '[]', -1241056759729112623),
    ("018", '[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ("020", '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
     '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ("024", '{"fields":[], "type":"record", "name":"foo", "doc":"foo", "aliases":["foo","bar"]}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ("026", '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},'
            '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
     -4860222112080293046),
    ("028", '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ("030", '{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
     '{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786),
    ("031", '{ "items":{"type":"null"}, "type":"array"}', '{"type":"array","items":"null"}',
     -589620603366471059),
    ("032", '{ "values":"string", "type":"map"}', '{"type":"map","values":"string"}', -8732877298790414990),
    ("033", '{"name":"PigValue","type":"record", "fields":[{"name":"value", '
            '"type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value","type":["null","int","long","PigValue"]}]}',
     -1759257747318642341),
]


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.from_dir(ROOT / "schemas")


def test_the_independent_crc_matches_apache_avros_published_fingerprints():
    assert crc64_avro(b"") == EMPTY
    for case, _, canonical, fp in PUBLISHED:
        assert crc64_avro(canonical.encode()) == unsigned(fp), case


@pytest.mark.parametrize("case, schema, canonical, fp", PUBLISHED, ids=[c[0] for c in PUBLISHED])
def test_header_fingerprint_is_the_published_value_little_endian(case, schema, canonical, fp):
    assert schema_fingerprint(json.loads(schema)) == unsigned(fp).to_bytes(8, "little")


def test_single_object_header_of_int_as_apache_avro_writes_it():
    # Apache Avro's Ruby test suite, lang/ruby/test/test_fingerprints.rb,
    # test_single_object_encoding_header: schema "int" -> c3 01 8f 5c 39 3f 1a d5 75 72.
    assert MAGIC + schema_fingerprint("int") == bytes.fromhex("c3018f5c393f1ad57572")


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_schema_is_written_with_its_crc_little_endian(codec, name):
    from fastavro import parse_schema
    from fastavro.schema import to_parsing_canonical_form
    declared = json.loads((ROOT / "schemas" / f"{name}.avsc").read_text())
    crc = crc64_avro(to_parsing_canonical_form(parse_schema(declared)).encode())
    data = codec.encode(name, sample(name))
    assert data[:10] == MAGIC + crc.to_bytes(8, "little")
    assert codec.fingerprint_order(data) == SPEC_ORDER


# ------------------------------------------------------------------- both orders are read

@pytest.mark.parametrize("name", SCHEMAS)
def test_records_written_before_17_decode_to_the_same_values(codec, name):
    new = codec.encode(name, sample(name))
    old = PreFixCodec(codec.registry).encode(name, sample(name))
    assert old[2:10] == new[2:10][::-1] == codec.schema(name).reversed_fingerprint
    assert old[10:] == new[10:]                     # the body never depended on the header
    assert codec.decode(name, old) == codec.decode(name, new) == sample(name)
    assert codec.fingerprint_order(old) == REVERSED_ORDER


def test_same_inputs_same_bytes(codec):
    for name in SCHEMAS:
        assert codec.encode(name, sample(name)) == Codec.from_dir(ROOT / "schemas").encode(name, sample(name))


def test_records_of_the_wrong_type_are_refused_in_either_order(codec):
    data = PreFixCodec(codec.registry).encode("outage_window", sample("outage_window"))
    with pytest.raises(DecodeError, match="OutageWindow record where .*RemedyAction"):
        codec.decode("remedy_action", data)


def test_unknown_fingerprints_are_unknown_in_either_order(codec):
    data = codec.encode("outage_window", sample("outage_window"))
    other = data[:2] + bytes(b ^ 0x5A for b in data[2:10]) + data[10:]
    for raw in (other, reversed_header(other)):
        with pytest.raises(DecodeError, match="unknown writer schema"):
            codec.decode("outage_window", raw)
        with pytest.raises(DecodeError, match="unknown writer schema"):
            codec.fingerprint_order(raw)


def test_an_older_schema_version_in_history_is_read_in_either_order(tmp_path: Path):
    (tmp_path / "history").mkdir()
    current = json.loads((ROOT / "schemas" / "remedy_action.avsc").read_text())
    older = json.loads(json.dumps(current))
    older["fields"] = [f for f in older["fields"] if f["name"] != "supersedes"]
    (tmp_path / "remedy_action.avsc").write_text(json.dumps(current))
    (tmp_path / "history" / "remedy_action.v0.avsc").write_text(json.dumps(older))
    codec = Codec.from_dir(tmp_path)
    writer = Codec(codec.registry.with_version("remedy_action", older, current=True))
    record = {k: v for k, v in sample("remedy_action").items() if k != "supersedes"}
    for data in (writer.encode("remedy_action", record), PreFixCodec(writer.registry).encode("remedy_action", record)):
        assert codec.decode("remedy_action", data) == {**record, "supersedes": None}


# ------------------------------------------------------------------- ambiguity is refused at build

def _with_fingerprint(codec: Codec, name: str, fp: bytes):
    import dataclasses
    return dataclasses.replace(codec.schema(name), fingerprint=fp)


def test_a_reversed_fingerprint_equal_to_another_schemas_fingerprint_fails_the_build(codec):
    # No two real schemas collide (2^-64 a pair), so the fingerprints are made up.
    fp = bytes.fromhex("0102030405060708")
    a = _with_fingerprint(codec, "remedy_action", fp)
    b = _with_fingerprint(codec, "user_notice", fp[::-1])
    with pytest.raises(CodecError, match="remedy_action.*reversed bytes 0807060504030201.*user_notice"):
        SchemaRegistry({"remedy_action": a, "user_notice": b}, {a.fingerprint: a, b.fingerprint: b})
    # a history version of the same record type is no less ambiguous
    older = _with_fingerprint(codec, "remedy_action", fp[::-1])
    with pytest.raises(CodecError, match="reversed bytes"):
        SchemaRegistry({"remedy_action": a}, {a.fingerprint: a, older.fingerprint: older})


def test_a_palindromic_fingerprint_is_its_own_reverse(codec):
    fp = bytes.fromhex("0102030404030201")
    a = _with_fingerprint(codec, "remedy_action", fp)
    registry = SchemaRegistry({"remedy_action": a}, {fp: a})
    assert registry.readable == {fp: a}


def test_the_real_schemas_have_no_ambiguous_fingerprints(codec):
    fps = set(codec.registry.known)
    assert not {v.reversed_fingerprint for v in codec.registry.known.values()} & fps
    assert len(codec.registry.readable) == 2 * len(fps)
