"""Avro on the wire, as Avro's own single-object encoding.

Every value is `C3 01` + the 8-byte CRC-64-AVRO fingerprint of the writer schema's Parsing
Canonical Form, little-endian as the specification says (the schema `"int"` has the fingerprint
0x7275d51a3f395c8f, written `8f 5c 39 3f 1a d5 75 72`), + the Avro binary body: what Apache Avro's
`BinaryMessageDecoder` and every other conforming reader expects. A reader looks the fingerprint
up among the schemas it knows (`schemas/*.avsc` and older versions kept in `schemas/history/`)
and resolves the writer schema to its own, so a consumer on a newer compatible schema reads older
records and the other way round. No registry service is needed; the schema files are the registry.

Before #17 makegood wrote the fingerprint's 8 bytes in the reverse order (big-endian). Records
written then stay on compacted and never-expiring topics and in the ledger's user index, so a
reader also accepts the reversed fingerprint of every known schema (`Codec.fingerprint_order`
tells which order a record uses); nothing writes it any more. The registry refuses to be built
when a reversed fingerprint equals another known fingerprint, since a record could then not be
told apart.

With a schema registry (`streams/wire/framing.py`, MAKEGOOD_SCHEMA_REGISTRY_URL) the codec writes
the Confluent framing instead: byte 0, the 4-byte big-endian schema id the registry assigned,
the same Avro body. It reads both framings: byte 0 -> the writer schema by id (from the
registry, cached), C3 01 -> by fingerprint as above, so producers can move over one by one.

Schemas are parsed once, when the registry is built. Timestamps stay `int` epoch millis: the
physical schemas used for (de)serialisation drop `logicalType`, which changes neither the bytes
nor the fingerprint, and spares a datetime round trip per field.
"""
from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint, to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from processors import model
from streams.errors import CodecError, DecodeError, EncodeError

MAGIC = b"\xc3\x01"
HEADER_LEN = 10
REGISTRY_MAGIC = 0                  # Confluent framing: byte 0, then a 4-byte schema id
REGISTRY_HEADER_LEN = 5
SPEC_ORDER = "little-endian"        # what makegood writes, as the Avro specification says
REVERSED_ORDER = "reversed"         # what makegood wrote before #17; still read
REGISTRY_FRAMING = "registry"       # no fingerprint: byte 0 + schema id (with a schema registry)

# schema file stem -> processors dataclass; dead letters stay plain dicts.
RECORD_CLASSES: Mapping[str, type] = {
    "outage_window": model.OutageWindow,
    "entitlement_state": model.EntitlementState,
    "damage_report": model.DamageReport,
    "remedy_action": model.RemedyAction,
    "review_case": model.ReviewCase,
    "user_notice": model.UserNotice,
    "incident_approval": model.IncidentApproval,
    "review_decision": model.ReviewDecision,
}


def _strip_logical(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical(v) for v in node]
    return node


def schema_fingerprint(declared: dict | list | str) -> bytes:
    """The 8 header bytes of a schema: CRC-64-AVRO of its Parsing Canonical Form, little-endian.

    fastavro returns that fingerprint as the hex of exactly those bytes (Java's
    `SchemaNormalization.fingerprint("CRC-64-AVRO", ...)` order), so the hex is read as bytes,
    not as a number (reading it as a number and writing that little-endian reversed it: #17)."""
    parsed = parse_schema(copy.deepcopy(declared))
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaVersion:
    name: str                 # file stem, e.g. "remedy_action"
    fingerprint: bytes        # 8 bytes as written: CRC-64-AVRO, little-endian (the spec's order)
    declared: dict            # as written in the .avsc (with logical types), for docs and tools
    physical: dict            # parsed, logical types dropped: what (de)serialisation uses

    @property
    def full_name(self) -> str:
        return self.physical["name"]

    @property
    def text(self) -> str:
        """The one string this schema is registered and looked up as (a registry matches schema
        text exactly: other whitespace would be another version)."""
        return json.dumps(self.declared, separators=(",", ":"), ensure_ascii=False)

    @property
    def reversed_fingerprint(self) -> bytes:
        """The header bytes makegood wrote for this schema before #17 (read, never written)."""
        return self.fingerprint[::-1]


def parse_version(name: str, declared: dict) -> SchemaVersion:
    physical = parse_schema(_strip_logical(copy.deepcopy(declared)))
    return SchemaVersion(name, schema_fingerprint(declared), declared, physical)


def _reversed_index(known: Mapping[bytes, SchemaVersion]) -> dict[bytes, SchemaVersion]:
    """Reversed fingerprint -> schema, for records written before #17. Fails when a reversed
    fingerprint is another known schema's fingerprint: such a record would be ambiguous."""
    out: dict[bytes, SchemaVersion] = {}
    for fp, v in known.items():
        rev = v.reversed_fingerprint
        if rev == fp:
            continue          # a palindrome: both orders are the same bytes, the same schema
        other = known.get(rev)
        if other is not None:
            raise CodecError(
                f"schema {v.name} ({v.full_name}) has fingerprint {fp.hex()}, whose reversed bytes "
                f"{rev.hex()} are the fingerprint of {other.name} ({other.full_name}): records of "
                f"{v.name} written before #17 would read as {other.name}. Change the structure of "
                f"one of them (the canonical form ignores docs) before deploying it")
        out[rev] = v
    return out


class SchemaRegistry:
    """The current schema of each record type plus every older version, by fingerprint (and by
    reversed fingerprint, for records written before #17)."""

    def __init__(self, current: Mapping[str, SchemaVersion], known: Mapping[bytes, SchemaVersion]):
        self.current = dict(current)
        self.known = dict(known)
        self.reversed = _reversed_index(self.known)
        # what a reader looks a header up in: one dict, so decoding costs one lookup as before
        self.readable = {**self.reversed, **self.known}

    @classmethod
    def from_dir(cls, directory: Path) -> "SchemaRegistry":
        current: dict[str, SchemaVersion] = {}
        known: dict[bytes, SchemaVersion] = {}
        for path in sorted(directory.glob("*.avsc")):
            v = parse_version(path.stem, json.loads(path.read_text()))
            current[v.name] = known[v.fingerprint] = v
        history = directory / "history"
        for path in sorted(history.glob("*.avsc")) if history.is_dir() else ():
            # history files are named <stem>.<anything>.avsc
            v = parse_version(path.name.split(".")[0], json.loads(path.read_text()))
            known.setdefault(v.fingerprint, v)
        if not current:
            raise CodecError(f"no .avsc schemas in {directory}")
        return cls(current, known)

    def with_version(self, name: str, declared: dict, *, current: bool) -> "SchemaRegistry":
        """A registry that also knows `declared` (and uses it as current when asked): schema evolution."""
        v = parse_version(name, declared)
        cur = dict(self.current)
        if current:
            cur[name] = v
        return SchemaRegistry(cur, {**self.known, v.fingerprint: v})


class Codec:
    """Encodes and decodes record values. `framing` (a RegistryFraming, streams/wire/framing.py)
    makes it write the registry framing and read it besides single-object encoding."""

    def __init__(self, registry: SchemaRegistry, framing: Any = None):
        self.registry = registry
        self.framing = framing
        ids = framing.write_ids if framing is not None else {}
        # the header each record type is written with: registry id when its current schema is
        # registered, else single-object encoding
        self._headers = {name: (bytes([REGISTRY_MAGIC]) + ids[v.fingerprint].to_bytes(4, "big")
                                if v.fingerprint in ids else MAGIC + v.fingerprint)
                         for name, v in self.registry.current.items()}

    @classmethod
    def from_dir(cls, directory: Path) -> "Codec":
        return cls(SchemaRegistry.from_dir(directory))

    def with_registry(self, registry: SchemaRegistry) -> "Codec":
        """The same framing over other schema versions (a reader schema of one's own)."""
        return Codec(registry, self.framing)

    def schema(self, name: str) -> SchemaVersion:
        try:
            return self.registry.current[name]
        except KeyError:
            raise CodecError(f"no schema named {name!r}") from None

    def header(self, name: str) -> bytes:
        """The bytes every record of `name` starts with, as this codec writes it."""
        self.schema(name)
        return self._headers[name]

    # ----------------------------------------------------------------- dicts (plain Avro values)

    def encode(self, name: str, record: Mapping[str, Any], *, check: bool = True) -> bytes:
        v = self.schema(name)
        if check:
            try:
                validate(record, v.physical, raise_errors=True)
            except ValidationError as exc:
                raise EncodeError(f"{name}: {'; '.join(str(e) for e in exc.errors)}") from None
        buf = io.BytesIO()
        buf.write(self._headers[name])
        try:
            schemaless_writer(buf, v.physical, record)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            raise EncodeError(f"{name}: {exc}") from None
        return buf.getvalue()

    def _writer(self, data: bytes | None) -> tuple[SchemaVersion, int]:
        """The writer schema of a value and where its Avro body starts."""
        if data is None:
            raise DecodeError("null value where a record was expected", data)
        if data[:1] == b"\x00":
            if self.framing is None:
                raise DecodeError("registry framing (byte 0 + schema id), but no schema registry is "
                                  "configured (MAKEGOOD_SCHEMA_REGISTRY_URL)", data)
            if len(data) < REGISTRY_HEADER_LEN:
                raise DecodeError("registry framing cut short (no 4-byte schema id)", data)
            return self.framing.writer(data), REGISTRY_HEADER_LEN
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("neither registry framing nor Avro single-object encoding (bad magic)", data)
        writer = self.registry.readable.get(data[2:HEADER_LEN])
        if writer is None:
            raise DecodeError(f"unknown writer schema fingerprint {data[2:HEADER_LEN].hex()}", data)
        return writer, HEADER_LEN

    def fingerprint_order(self, data: bytes | None) -> str:
        """SPEC_ORDER for a record written as the Avro specification says (makegood since #17),
        REVERSED_ORDER for one written before #17, REGISTRY_FRAMING for a record in the registry
        framing (a schema id, no fingerprint); DecodeError if its writer schema is unknown."""
        writer, start = self._writer(data)
        if start != HEADER_LEN:
            return REGISTRY_FRAMING
        return SPEC_ORDER if data[2:HEADER_LEN] == writer.fingerprint else REVERSED_ORDER

    def decode(self, name: str, data: bytes | None) -> dict:
        writer, start = self._writer(data)
        reader = self.schema(name)
        if writer.full_name != reader.full_name:
            raise DecodeError(f"a {writer.full_name} record where {reader.full_name} was expected", data)
        body = io.BytesIO(data)
        body.seek(start)
        try:
            if writer is reader or writer.fingerprint == reader.fingerprint:
                value = schemaless_reader(body, reader.physical, None)
            else:
                value = schemaless_reader(body, writer.physical, reader.physical)
        except SchemaResolutionError as exc:
            raise DecodeError(f"writer schema cannot be resolved to the reader's: {exc}", data) from None
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DecodeError(f"corrupt Avro body: {type(exc).__name__}: {exc}", data) from None
        if body.tell() != len(data):
            raise DecodeError(f"{len(data) - body.tell()} trailing bytes after the record", data)
        return value

    # ----------------------------------------------------------------- processors dataclasses

    def encode_obj(self, name: str, obj: Any) -> bytes:
        # Records built by processors are well-typed: skip the per-field validation pass.
        return self.encode(name, model.to_dict(obj), check=False)

    def decode_obj(self, name: str, data: bytes | None) -> Any:
        value = self.decode(name, data)
        try:
            return model.from_dict(RECORD_CLASSES[name], value)
        except (KeyError, ValueError, TypeError) as exc:
            raise DecodeError(f"{name}: {exc}", data) from None
