"""The Confluent framing, through a Confluent-compatible schema registry.

`open_codec(settings)` is how every part of makegood gets its codec. With a registry configured
(MAKEGOOD_SCHEMA_REGISTRY_URL, the local stack's by default) it registers the current schema of
each topic under the topic's subject (TopicNameStrategy: `<topic>-value`), sets the subject's
compatibility to BACKWARD, and returns a codec that writes `00` + schema id + Avro body and reads
that as well as single-object encoding. Without one it is the plain single-object codec.

Reading by id: the writer schema is fetched once per id (confluent-kafka's SchemaRegistryClient)
and cached, parsed by fastavro; the body is then decoded by fastavro as before, so the hot path
costs one dict lookup per record, not the client deserializer's walk of the schema. Outcomes:
- an id the registry does not know: DecodeError (the record becomes a dead letter with reason);
- a schema that is not Avro, or not the record type the topic carries, or that cannot be
  resolved to the reader's: DecodeError (dead letter);
- the registry not answering (connection refused, 5xx, auth refused): RegistryUnavailable after
  waiting with backoff up to `outage_wait` seconds (None: for ever, as the worker does). The
  record is never dropped: the worker holds its batch until the registry is back.

Schema ids are assigned by the registry, so a record's first five bytes depend on the registry
it was written through (stable for that registry: the local one keeps its database under
.stack/); the Avro body is the same bytes as before for the same record.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Callable, Mapping

from streams.errors import DecodeError, RegistryUnavailable, SchemaIncompatible
from streams.kafka.topics import TOPIC_SCHEMAS
from streams.settings import Settings
from streams.wire.codec import Codec, SchemaRegistry, SchemaVersion, parse_version

log = logging.getLogger(__name__)

COMPATIBILITY = "BACKWARD"
CLI_OUTAGE_WAIT = 60.0       # a command gives up (RegistryUnavailable) after this; the worker waits on
NOT_FOUND = 404
MAX_UNKNOWN = 10_000         # unknown ids remembered (bounded: garbage can name any of 2^32)


def _client(conf: Mapping[str, str]):
    from confluent_kafka.schema_registry import SchemaRegistryClient
    return SchemaRegistryClient.new_client(dict(conf)) if conf["url"].startswith("mock://") \
        else SchemaRegistryClient(dict(conf))


def _is_outage(exc: Exception) -> bool:
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    if isinstance(exc, SchemaRegistryError):
        return exc.http_status_code >= 500 or exc.http_status_code in (401, 403, 429)
    return True       # connection refused, timeouts, DNS: the registry is not there


class RegistryFraming:
    """Schema ids both ways: the ids makegood writes (by schema fingerprint) and a cache of the
    writer schemas of ids it has read."""

    def __init__(self, client, registry: SchemaRegistry, write_ids: Mapping[bytes, int], *,
                 outage_wait: float | None = None, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.registry = registry
        self.write_ids = dict(write_ids)
        self.outage_wait = outage_wait
        self._sleep = sleep
        self._by_name = {v.full_name: v.name for v in registry.current.values()}
        # ids the registry answered "no such schema" (or an unreadable one) for; the registry
        # issues an id before anyone can write it, so the answer does not change
        self._unknown: dict[bytes, str] = {}
        # 4 header bytes after the 0 -> writer schema; our own schemas need no round trip
        self.readable: dict[bytes, SchemaVersion] = {
            i.to_bytes(4, "big"): registry.known[fp] for fp, i in self.write_ids.items()}

    def writer(self, data: bytes) -> SchemaVersion:
        key = data[1:5]
        v = self.readable.get(key)
        if v is None:
            if key in self._unknown:      # garbage that starts with 0: one registry call per id, not per record
                raise DecodeError(self._unknown[key], data)
            try:
                v = self.readable[key] = self._fetch(int.from_bytes(key, "big"), data)
            except DecodeError as exc:
                if len(self._unknown) < MAX_UNKNOWN:
                    self._unknown[key] = exc.reason
                raise
        return v

    def _fetch(self, schema_id: int, data: bytes) -> SchemaVersion:
        schema = self._call(lambda: self.client.get_schema(schema_id), f"schema id {schema_id}", data,
                            not_found=lambda: DecodeError(f"unknown schema id {schema_id} (not in the registry)", data))
        if (schema.schema_type or "AVRO").upper() != "AVRO":
            raise DecodeError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro", data)
        try:
            v = parse_version("", json.loads(schema.schema_str))
            v = replace(v, name=self._by_name.get(v.full_name, ""))
        except Exception as exc:  # noqa: BLE001 - whatever the registry holds, it is not ours to read
            raise DecodeError(f"schema id {schema_id} is not a readable Avro schema: {exc}", data) from None
        log.info("registry: schema id %d is %s", schema_id, v.full_name)
        return v

    def _call(self, fn, what: str, raw: bytes | None, *, not_found: Callable[[], Exception] | None = None):
        """fn() with backoff while the registry is unavailable; `not_found` for a 404."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError
        delay, waited = 0.5, 0.0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below
                if isinstance(exc, SchemaRegistryError) and exc.http_status_code == NOT_FOUND and not_found:
                    raise not_found() from None
                if not _is_outage(exc):     # the registry answered, about this id: the record's problem
                    raise DecodeError(f"registry refused {what}: {exc}", raw) from None
                if self.outage_wait is not None and waited >= self.outage_wait:
                    raise RegistryUnavailable(f"schema registry unavailable looking up {what} "
                                              f"for {waited:.0f} s: {exc}") from None
                log.warning("registry: unavailable looking up %s (%s); retrying in %.1f s", what, exc, delay)
                self._sleep(delay)
                waited += delay
                delay = min(delay * 2, 30.0)


def register(client, registry: SchemaRegistry, subjects: Mapping[str, str], *,
             sleep: Callable[[float], None] = time.sleep) -> dict[bytes, int]:
    """Register each current schema under its subject (idempotent: the same text gets the same
    id) and set the subject to BACKWARD; {fingerprint: id}. SchemaIncompatible if refused."""
    ids: dict[bytes, int] = {}
    for name, subject in subjects.items():
        v = registry.current[name]
        ids[v.fingerprint] = _register_one(client, name, subject, v, sleep)
    return ids


def _register_one(client, name: str, subject: str, v: SchemaVersion, sleep: Callable[[float], None]) -> int:
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    schema = Schema(v.text, "AVRO")
    for attempt in range(4):
        try:
            try:     # already there (the usual case for a worker after `topics create`): no write
                return client.lookup_schema(subject, schema).schema_id
            except SchemaRegistryError as exc:
                if exc.http_status_code != NOT_FOUND:
                    raise
            schema_id = client.register_schema(subject, schema)
            client.set_compatibility(subject, COMPATIBILITY)
            return schema_id
        except SchemaRegistryError as exc:
            # 409 is also what two workers racing to create the same subject get (Apicurio):
            # look again before calling it a refusal
            if exc.http_status_code == 409 and attempt < 3:
                sleep(0.2 * (attempt + 1))
                continue
            if exc.http_status_code in (409, 422):
                raise SchemaIncompatible(f"the registry refused schemas/{name}.avsc for {subject}: it is not "
                                         f"{COMPATIBILITY} compatible with the registered versions "
                                         f"({exc.error_message})") from None
            raise RegistryUnavailable(f"registering {subject}: {exc}") from None
        except Exception as exc:  # noqa: BLE001
            raise RegistryUnavailable(f"registering {subject}: {exc}") from None
    raise AssertionError("unreachable")


def subjects(settings: Settings) -> dict[str, str]:
    """schema name -> subject of the topic it is written to, under the settings' namespace."""
    return {name: settings.subject(topic) for topic, name in TOPIC_SCHEMAS.items()}


def open_codec(settings: Settings, *, outage_wait: float | None = None,
               registry: SchemaRegistry | None = None, client=None) -> Codec:
    """The codec for these settings: registry framing when a registry is configured.
    `client`: a SchemaRegistryClient of one's own (tests)."""
    registry = registry or SchemaRegistry.from_dir(settings.schemas_dir)
    conf = settings.schema_registry_config()
    if not conf and client is None:
        return Codec(registry)
    client = client or _client(conf)
    ids = register(client, registry, subjects(settings))
    return Codec(registry, RegistryFraming(client, registry, ids, outage_wait=outage_wait))


def register_schemas(settings: Settings, say: Callable[[str], None] = print) -> None:
    """`topics create`: register every topic's schema (BACKWARD per subject)."""
    conf = settings.schema_registry_config()
    if not conf:
        say("schemas: no registry (MAKEGOOD_SCHEMA_REGISTRY_URL=none); single-object encoding")
        return
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    client = _client(conf)
    ids = register(client, registry, subjects(settings))
    for subject in subjects(settings).values():     # also for subjects that existed before
        try:
            client.set_compatibility(subject, COMPATIBILITY)
        except Exception as exc:  # noqa: BLE001
            raise RegistryUnavailable(f"setting {COMPATIBILITY} on {subject}: {exc}") from None
    say(f"schemas: {len(ids)} registered at {settings.schema_registry_display} "
        f"(subjects <topic>-value, {COMPATIBILITY})")


def check_schemas(settings: Settings) -> list[tuple[str, str, str]]:
    """`makegood schemas check`: (schema, subject, verdict) for each topic's current .avsc against
    the registry, without registering anything. Verdicts: "registered" (this exact schema is a
    version of the subject), "compatible" (would be a new BACKWARD-compatible version), "new
    subject", "INCOMPATIBLE" (the registry would refuse it: publishing would fail)."""
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError
    conf = settings.schema_registry_config()
    if not conf:
        raise RegistryUnavailable("no schema registry configured (MAKEGOOD_SCHEMA_REGISTRY_URL=none)")
    client = _client(conf)
    registry = SchemaRegistry.from_dir(settings.schemas_dir)
    out = []
    for name, subject in subjects(settings).items():
        schema = Schema(registry.current[name].text, "AVRO")
        try:
            try:
                client.lookup_schema(subject, schema)
                verdict = "registered"
            except SchemaRegistryError as exc:
                if exc.http_status_code != NOT_FOUND:
                    raise
                verdict = "compatible" if client.test_compatibility(subject, schema) else "INCOMPATIBLE"
        except SchemaRegistryError as exc:
            if exc.http_status_code != NOT_FOUND:
                raise RegistryUnavailable(f"checking {subject}: {exc}") from None
            verdict = "new subject"
        except Exception as exc:  # noqa: BLE001
            raise RegistryUnavailable(f"checking {subject}: {exc}") from None
        out.append((name, subject, verdict))
    return out
