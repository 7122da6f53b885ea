"""Plain JSON <-> Avro values, driven by the declared schema.

People type and read records as plain JSON: the field names of DESIGN §2, no Avro union wrappers
(`{"long": 5}`), null for an absent value, enums by name, timestamps as ISO-8601 strings, bytes as
base64. The codec wants plain Avro values: int epoch millis, raw bytes. This module converts
between the two by walking the schema as written in `schemas/*.avsc` (the declared form keeps
`logicalType`, which is how a timestamp is told apart from any other long).

Input is strict on purpose: a publish tool that guesses would put records on a topic that the
workers then dead-letter. Every problem names the field path (`source.partition`, `services[2]`).
"""
from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from streams.wire.codec import Codec, EncodeError
from streams.errors import JsonRecordError

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_MS = timedelta(milliseconds=1)
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


# ----------------------------------------------------------------------------- timestamps

def parse_timestamp(value: Any, path: str) -> int:
    """Epoch millis from an int or an ISO-8601 string that states its offset."""
    if isinstance(value, bool):
        raise JsonRecordError(path, f"expected a timestamp, got {json_type(value)}")
    if isinstance(value, int):
        _check_range(value, LONG_RANGE, path)
        return value
    if not isinstance(value, str):
        raise JsonRecordError(path, f"expected an ISO-8601 timestamp or epoch millis, got {json_type(value)}")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise JsonRecordError(path, f"not an ISO-8601 timestamp: {value!r}") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise JsonRecordError(
            path, f"timestamp {value!r} has no UTC offset; write it as e.g. "
                  f"{value}+09:00 (KST) or {value}Z (UTC)")
    # Integer arithmetic on timedeltas: exact, no float rounding. Sub-millisecond digits are
    # truncated towards the past, as Avro's timestamp-millis does.
    return (dt - EPOCH) // ONE_MS


def format_timestamp(millis: int) -> str | int:
    """ISO-8601 UTC with milliseconds and "Z"; millis outside datetime's range stay an int."""
    try:
        dt = EPOCH + millis * ONE_MS
    except OverflowError:
        return millis
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{dt.microsecond // 1000:03d}Z"


# ----------------------------------------------------------------------------- helpers

def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_range(value: int, bounds: tuple[int, int], path: str) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise JsonRecordError(path, f"{value} does not fit in {'an int' if bounds == INT_RANGE else 'a long'}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_timestamp(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis" \
        and schema.get("type") == "long"


def _collect_names(schema: Any, namespace: str, names: dict[str, dict]) -> None:
    """Every named type (record, enum, fixed) of a declared schema, by full and short name."""
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "error", "enum", "fixed"):
        name = schema["name"]
        ns = schema.get("namespace", namespace)
        full = name if "." in name or not ns else f"{ns}.{name}"
        names.setdefault(full, schema)
        names.setdefault(name.rsplit(".", 1)[-1], schema)
        namespace = full.rsplit(".", 1)[0] if "." in full else ""
    if kind in ("record", "error"):
        for field in schema["fields"]:
            _collect_names(field["type"], namespace, names)
    elif kind == "array":
        _collect_names(schema["items"], namespace, names)
    elif kind == "map":
        _collect_names(schema["values"], namespace, names)
    elif isinstance(kind, (dict, list)):
        _collect_names(kind, namespace, names)


# ----------------------------------------------------------------------------- the converter

class JsonRecords:
    """Converts plain JSON records to plain Avro values and back, for every schema a codec knows."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._names: dict[str, dict[str, dict]] = {}

    def _named(self, name: str) -> dict[str, dict]:
        if name not in self._names:
            names: dict[str, dict] = {}
            _collect_names(self.codec.schema(name).declared, "", names)
            self._names[name] = names
        return self._names[name]

    # ------------------------------------------------------------------ JSON -> Avro

    def to_avro(self, name: str, obj: Any) -> dict:
        """The plain Avro value of JSON record `obj`; raises JsonRecordError naming the field."""
        value, _ = self._to_avro_checked(name, obj)
        return value

    def encode(self, name: str, obj: Any) -> bytes:
        """`obj` converted and encoded on the wire (single-object Avro)."""
        _, data = self._to_avro_checked(name, obj)
        return data

    def _to_avro_checked(self, name: str, obj: Any) -> tuple[dict, bytes]:
        declared = self.codec.schema(name).declared
        if not isinstance(obj, dict):
            raise JsonRecordError("", f"expected a JSON object, got {json_type(obj)}")
        value = self._in(declared, obj, "", self._named(name))
        try:
            data = self.codec.encode(name, value)
        except EncodeError as exc:  # anything the walk above does not know about
            raise JsonRecordError("", str(exc)) from None
        return value, data

    def _in(self, schema: Any, value: Any, path: str, names: Mapping[str, dict]) -> Any:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return self._in_primitive(schema, value, path)
            return self._in(names[schema], value, path, names)
        if isinstance(schema, list):
            return self._in_union(schema, value, path, names)
        kind = schema["type"]
        if _is_timestamp(schema):
            return parse_timestamp(value, path)
        if kind in ("record", "error"):
            return self._in_record(schema, value, path, names)
        if kind == "enum":
            if not isinstance(value, str):
                raise JsonRecordError(path, f"expected one of {', '.join(schema['symbols'])}, got {json_type(value)}")
            if value not in schema["symbols"]:
                raise JsonRecordError(path, f"{value!r} is not one of {', '.join(schema['symbols'])}")
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise JsonRecordError(path, f"expected an array, got {json_type(value)}")
            return [self._in(schema["items"], v, f"{path}[{i}]", names) for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise JsonRecordError(path, f"expected an object, got {json_type(value)}")
            return {k: self._in(schema["values"], v, _join(path, k), names) for k, v in value.items()}
        if kind == "fixed":
            data = self._in_primitive("bytes", value, path)
            if len(data) != schema["size"]:
                raise JsonRecordError(path, f"expected {schema['size']} bytes, got {len(data)}")
            return data
        return self._in(kind, value, path, names)  # {"type": "long", "logicalType": <other>}

    def _in_record(self, schema: dict, value: Any, path: str, names: Mapping[str, dict]) -> dict:
        if not isinstance(value, dict):
            raise JsonRecordError(path, f"expected an object, got {json_type(value)}")
        fields = schema["fields"]
        known = {f["name"] for f in fields}
        unknown = [k for k in value if k not in known]
        if unknown:
            where = _join(path, unknown[0])
            more = f" (also: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
            raise JsonRecordError(where, f"unknown field{more}; {schema['name']} has {', '.join(sorted(known))}")
        out: dict = {}
        for field in fields:
            fpath = _join(path, field["name"])
            if field["name"] in value:
                out[field["name"]] = self._in(field["type"], value[field["name"]], fpath, names)
            elif "default" in field:
                out[field["name"]] = field["default"]
            else:
                raise JsonRecordError(fpath, "missing field")
        return out

    def _in_union(self, branches: list, value: Any, path: str, names: Mapping[str, dict]) -> Any:
        if value is None:
            if "null" in branches:
                return None
            raise JsonRecordError(path, "must not be null")
        others = [b for b in branches if b != "null"]
        if len(others) == 1:
            return self._in(others[0], value, path, names)
        problems = []
        for branch in others:
            try:
                return self._in(branch, value, path, names)
            except JsonRecordError as exc:
                problems.append(exc.problem)
        raise JsonRecordError(path, "fits no branch of the union: " + "; ".join(problems))

    def _in_primitive(self, kind: str, value: Any, path: str) -> Any:
        if kind == "null":
            if value is not None:
                raise JsonRecordError(path, f"expected null, got {json_type(value)}")
            return None
        if kind == "boolean":
            if not isinstance(value, bool):
                raise JsonRecordError(path, f"expected true or false, got {json_type(value)}")
            return value
        if kind in ("int", "long"):
            if isinstance(value, float) and path.endswith("_krw"):
                raise JsonRecordError(path, f"money is integer won, got {value!r}")
            if isinstance(value, bool) or not isinstance(value, int):
                raise JsonRecordError(path, f"expected a whole number, got {json_type(value)}")
            _check_range(value, INT_RANGE if kind == "int" else LONG_RANGE, path)
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise JsonRecordError(path, f"expected a number, got {json_type(value)}")
            return float(value)
        if kind == "string":
            if not isinstance(value, str):
                raise JsonRecordError(path, f"expected a string, got {json_type(value)}")
            return value
        if kind == "bytes":
            if not isinstance(value, str):
                raise JsonRecordError(path, f"expected base64 text, got {json_type(value)}")
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise JsonRecordError(path, "not valid base64") from None
        raise JsonRecordError(path, f"unsupported Avro type {kind}")

    # ------------------------------------------------------------------ Avro -> JSON

    def to_json(self, name: str, value: Mapping[str, Any]) -> dict:
        """The plain JSON form of a decoded Avro value (timestamps ISO-8601 UTC, bytes base64)."""
        return self._out(self.codec.schema(name).declared, value, self._named(name))

    def decode(self, name: str, data: bytes | None) -> dict:
        """Wire bytes straight to plain JSON; raises the codec's DecodeError."""
        return self.to_json(name, self.codec.decode(name, data))

    def _out(self, schema: Any, value: Any, names: Mapping[str, dict]) -> Any:
        if value is None:
            return None
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return base64.b64encode(value).decode("ascii") if schema == "bytes" else value
            return self._out(names[schema], value, names)
        if isinstance(schema, list):
            for branch in schema:
                if branch != "null" and _fits(branch, value, names):
                    return self._out(branch, value, names)
            return value
        kind = schema["type"]
        if _is_timestamp(schema):
            return format_timestamp(value)
        if kind in ("record", "error"):
            return {f["name"]: self._out(f["type"], value.get(f["name"]), names) for f in schema["fields"]}
        if kind == "array":
            return [self._out(schema["items"], v, names) for v in value]
        if kind == "map":
            return {k: self._out(schema["values"], v, names) for k, v in value.items()}
        if kind == "fixed":
            return base64.b64encode(value).decode("ascii")
        if kind == "enum":
            return value
        return self._out(kind, value, names)


def _fits(schema: Any, value: Any, names: Mapping[str, dict]) -> bool:
    """Whether a decoded value belongs to this union branch (a cheap type test, not validation)."""
    if isinstance(schema, str) and schema not in PRIMITIVES:
        schema = names[schema]
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, (list, dict)):
        return _fits(kind, value, names)
    if kind in ("record", "error", "map"):
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind in ("enum", "string"):
        return isinstance(value, str)
    if kind in ("bytes", "fixed"):
        return isinstance(value, (bytes, bytearray))
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("float", "double"):
        return isinstance(value, float)
    return False
