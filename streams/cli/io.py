"""`makegood publish` and `makegood consume` (JSON lines in and out).

publish writes the input topics only (outputs are the workers'), and admits every line exactly as
a worker will (`decide.admit.Admission.check`: the schema, then the validation under the policy,
then the key) before anything reaches the broker, so a record publish accepts is never
dead-lettered for an invalid field. A bad line is reported with its number and the worker's own
reason. By default one bad line publishes nothing (a file is a unit a user prepared: half of it
on the topic is harder to mend than none); `--skip-invalid` publishes the valid lines anyway. The
good ones are produced with an idempotent producer and every delivery report is awaited. consume prints records in the same plain JSON
form, so its output can be edited and published again. `--from-beginning` reads by partition
assignment without a consumer group, so an SRE peeking at a topic never moves a worker's offsets.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from processors.policy import load_policy

from streams.decide.admit import Admission, Rejection
from streams.cli.help import command
from streams.wire.codec import DecodeError
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.wire.jsonio import JsonRecordError, JsonRecords
from streams.settings import Settings
from streams.kafka.topics import (ACTIONS, APPROVALS, DEADLETTER, DECISIONS, ENTITLEMENTS, INPUT_TOPICS, NOTICES,
                                  OUTAGES, REPORTS,
                                  REVIEWS, TOPIC_SCHEMAS)
from streams.errors import CommandError, ProduceError, PublishError
from streams.kafka.producer import Producer, describe

# The record field whose value is the Kafka key (DESIGN §2). Dead letters are keyed by the
# source record's key, which they carry as bytes; see `record_key`.
KEY_FIELDS: dict[str, str] = {
    OUTAGES: "incident_id",
    ENTITLEMENTS: "entitlement_id",
    REPORTS: "reporter_id",
    ACTIONS: "user_id",
    REVIEWS: "case_id",
    NOTICES: "user_id",
    DECISIONS: "reporter_id",   # with the reporter's reports and cases (co-partitioned)
    DEADLETTER: "key",
}
TOMBSTONE = "__tombstone__"
TOMBSTONE_TOPICS = {ENTITLEMENTS: "entitlement_id"}  # compacted topics where null means "deleted"
EXIT_REJECTED = 2
DELIVERY_TIMEOUT_MS = 30_000
PUBLISH_CHUNK = 10_000       # lines produced and acknowledged at a time (and a progress line)


# ----------------------------------------------------------------------------- helpers

def schema_for(topic: str) -> str:
    """The schema stem of a logical topic, or one line naming the valid topics."""
    try:
        return TOPIC_SCHEMAS[topic]
    except KeyError:
        raise CommandError(f"unknown topic {topic!r}; valid topics: {', '.join(TOPIC_SCHEMAS)}") from None


def record_key(topic: str, value: dict) -> bytes:
    """The Kafka key of a plain Avro value on `topic`."""
    if topic == DEADLETTER:
        # The source key when it had one; otherwise the source topic, so keyless poison from one
        # topic stays together on one partition.
        return value["key"] if value["key"] is not None else value["source_topic"].encode()
    return str(value[KEY_FIELDS[topic]]).encode()


def _require_topic(settings: Settings, topic: str, list_topics: Callable[..., Any]) -> str:
    """The real topic name, after checking the broker has it (never auto-creating it)."""
    real = settings.topic(topic)
    try:
        md = list_topics(timeout=10)
    except Exception as exc:  # KafkaException: broker unreachable
        raise CommandError(f"cannot reach Kafka at {settings.bootstrap}: {exc}") from None
    if real not in md.topics:
        raise CommandError(f"topic {real} does not exist on {settings.bootstrap}; "
                             "run `makegood topics create` first")
    return real


def _parse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@dataclass
class LineResult:
    number: int
    key: bytes | None = None
    value: bytes | None = None
    error: str | None = None


def input_topic(topic: str) -> str:
    """The schema stem of an input topic; any other topic is one line saying who writes it."""
    schema = schema_for(topic)
    if topic == APPROVALS:
        raise CommandError(f"{topic} is written by `makegood incident approve`, not published by hand")
    if topic not in INPUT_TOPICS:
        raise CommandError(f"{topic} is written by the makegood workers, not published by hand; "
                           f"publish writes only the input topics: {', '.join(INPUT_TOPICS)}")
    return schema


def parse_lines(lines: Iterator[bytes], topic: str, records: JsonRecords,
                admission: Admission | None = None) -> Iterator[LineResult]:
    """Each non-blank input line checked and encoded, or with the reason it was rejected: by
    `admission` too when given, with the reason a worker's dead letter would give."""
    schema = schema_for(topic)
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield LineResult(number, error=f"not UTF-8 text: {exc.reason} at byte {exc.start}")
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text, parse_constant=_parse_constant)
        except ValueError as exc:
            yield LineResult(number, error=f"not JSON: {exc}")
            continue
        try:
            line = _encode_line(number, obj, topic, schema, records)
        except JsonRecordError as exc:
            yield LineResult(number, error=str(exc))
            continue
        if admission is not None and line.value is not None:     # a tombstone is not admitted
            got = admission.check(schema, line.value, line.key)
            if isinstance(got, Rejection):
                line = LineResult(number, error=got.reason)
        yield line


def _encode_line(number: int, obj: Any, topic: str, schema: str, records: JsonRecords) -> LineResult:
    if isinstance(obj, dict) and TOMBSTONE in obj:
        id_field = TOMBSTONE_TOPICS.get(topic)
        if id_field is None:
            raise JsonRecordError(TOMBSTONE, f"tombstones are only for {', '.join(TOMBSTONE_TOPICS)}")
        if obj[TOMBSTONE] is not True:
            raise JsonRecordError(TOMBSTONE, "must be true")
        extra = sorted(set(obj) - {TOMBSTONE, id_field})
        if extra:
            raise JsonRecordError(extra[0], f"a tombstone carries only {id_field} and {TOMBSTONE}")
        key = obj.get(id_field)
        if not isinstance(key, str) or not key:
            raise JsonRecordError(id_field, "a tombstone needs a non-empty string id")
        return LineResult(number, key=key.encode(), value=None)
    value = records.to_avro(schema, obj)
    return LineResult(number, key=record_key(topic, value), value=records.codec.encode(schema, value))


def _open_input(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return Path(path).open("rb")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None


# ----------------------------------------------------------------------------- publish

def publish(args: argparse.Namespace, settings: Settings) -> int:
    topic = args.topic
    input_topic(topic)
    admission = Admission(open_codec(settings, outage_wait=CLI_OUTAGE_WAIT), load_policy(str(settings.policy_path)))
    records = JsonRecords(admission.codec)
    producer = Producer(settings, **{"linger.ms": 20, "message.timeout.ms": DELIVERY_TIMEOUT_MS})
    failed: list[str] = []
    rejected = sent = 0
    source = None
    # all-or-nothing: every line is checked before the first is produced (the valid ones wait in
    # memory); --skip-invalid streams, a chunk at a time
    streaming = args.skip_invalid
    try:
        real = _require_topic(settings, topic, producer.list_topics)
        show_progress = sys.stderr.isatty()
        source = _open_input(args.file)
        chunk: list[LineResult] = []
        for line in parse_lines(iter(source), topic, records, admission):
            if line.error is not None:
                rejected += 1
                print(f"line {line.number}: {line.error}", file=sys.stderr)
                continue
            chunk.append(line)
            if streaming and len(chunk) == PUBLISH_CHUNK:
                sent += _send(producer, real, chunk, failed)
                chunk = []
                if show_progress:
                    print(f"... {sent} sent", file=sys.stderr)
        if rejected and not streaming:
            print(f"published 0 of {len(chunk) + rejected} lines: {rejected} rejected, nothing sent to {real} "
                  "(fix them, or --skip-invalid to publish the valid ones)", file=sys.stderr)
            return EXIT_REJECTED
        for i in range(0, len(chunk), PUBLISH_CHUNK):
            sent += _send(producer, real, chunk[i:i + PUBLISH_CHUNK], failed)
            if show_progress and len(chunk) > PUBLISH_CHUNK:
                print(f"... {sent} sent", file=sys.stderr)
    finally:
        if source is not None and source is not sys.stdin.buffer:
            source.close()
        producer.close(DELIVERY_TIMEOUT_MS / 1000 + 5)
    print(f"published {sent - len(failed)}, rejected {rejected} ({real})", file=sys.stderr)
    if failed:
        raise PublishError(f"{len(failed)} of {sent} records were not delivered to {real} (first: {failed[0]})")
    return EXIT_REJECTED if rejected else 0


def _send(producer: Producer, real: str, lines: list[LineResult], failed: list[str]) -> int:
    """Produce a chunk of valid lines and wait for every delivery report; failures are noted
    by line number and the next chunk still goes out, as each line stands on its own."""
    try:
        producer.send_batch_sync([(real, ln.key, ln.value, None) for ln in lines], DELIVERY_TIMEOUT_MS / 1000 + 5)
    except ProduceError as exc:
        if not exc.failures:
            failed.extend(f"line {ln.number}: {exc}" for ln in lines)
        failed.extend(f"line {lines[i].number}: {describe(err)}" for i, err in exc.failures)
    return len(lines)


# ----------------------------------------------------------------------------- consume

def consume(args: argparse.Namespace, settings: Settings) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

    topic = args.topic
    schema = schema_for(topic)
    records = JsonRecords(open_codec(settings, outage_wait=CLI_OUTAGE_WAIT))
    grouped = args.group is not None
    conf = {**settings.kafka_config(),
            "group.id": args.group if grouped else f"makegood-consume-{uuid.uuid4().hex}",
            "enable.auto.commit": grouped, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False,
            "isolation.level": "read_committed"}
    consumer = Consumer(conf)
    printed = 0
    try:
        real = _require_topic(settings, topic, consumer.list_topics)
        if grouped:
            consumer.subscribe([real])
        else:
            partitions = consumer.list_topics(timeout=10).topics[real].partitions
            start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
            consumer.assign([TopicPartition(real, p, start) for p in sorted(partitions)])
        last = time.monotonic()
        while args.max is None or printed < args.max:
            msg = consumer.poll(0.2)
            if msg is None:
                if args.until_idle is not None and time.monotonic() - last >= args.until_idle:
                    break
                continue
            err = msg.error()
            if err is not None:
                if err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise CommandError(f"consuming {real}: {err.str()}")
                print(f"consuming {real}: {err.str()}", file=sys.stderr)
                continue
            last = time.monotonic()
            obj = _render(msg, topic, schema, records, meta=args.meta)
            if obj is not None:
                sys.stdout.write(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n")
                sys.stdout.flush()
                printed += 1
            if grouped:
                consumer.store_offsets(msg)
    except BrokenPipeError:  # `makegood consume ... | head`: the reader has gone, that is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # silence the exit flush
    finally:
        consumer.close()  # commits stored offsets when grouped
    return 0


def _render(msg: Any, topic: str, schema: str, records: JsonRecords, *, meta: bool) -> dict | None:
    """The plain JSON of one record, or None after reporting why it cannot be read."""
    value = msg.value()
    if value is None and topic in TOMBSTONE_TOPICS:
        key = msg.key()
        try:
            obj: dict = {TOMBSTONE_TOPICS[topic]: key.decode("utf-8") if key is not None else None,
                         TOMBSTONE: True}
        except UnicodeDecodeError:
            print(f"partition {msg.partition()} offset {msg.offset()}: tombstone key is not UTF-8",
                  file=sys.stderr)
            return None
    else:
        try:
            obj = records.decode(schema, value)
        except DecodeError as exc:
            print(f"partition {msg.partition()} offset {msg.offset()}: {exc.reason}", file=sys.stderr)
            return None
    if meta:
        obj["_partition"] = msg.partition()
        obj["_offset"] = msg.offset()
    return obj


# ----------------------------------------------------------------------------- argparse

def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value
    return parse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the publish/consume sub-commands to the makegood parser."""
    topics = ", ".join(TOPIC_SCHEMAS)
    pub = command(
        sub, "publish", help="validate JSON lines as the workers will and publish them to an input topic",
        examples=["makegood publish damage.reports.v1 reports.jsonl",
                  "makegood publish entitlement.states.v1 states.jsonl --skip-invalid   # publish the valid lines, report the rest"],
        description=f"Publish JSON lines (one record per line) to TOPIC, one of the input topics: "
                    f"{', '.join(INPUT_TOPICS)}. Every line is checked as a worker admits it (schema, "
                    "validation under MAKEGOOD_POLICY, key); invalid lines are reported as `line N: reason` "
                    "and, unless --skip-invalid, nothing is published. "
                    'On entitlement.states.v1, {"entitlement_id": "...", "__tombstone__": true} '
                    "publishes a tombstone. Exit status: 0 all published, 2 some lines rejected, "
                    "1 other errors.")
    pub.add_argument("topic", metavar="TOPIC", help="logical topic name, e.g. entitlement.states.v1")
    pub.add_argument("file", metavar="FILE", help="JSON-lines file, or - for standard input")
    pub.add_argument("--skip-invalid", action="store_true",
                     help="publish the valid lines even when some are rejected (default: all or nothing)")
    pub.set_defaults(func=publish)

    con = command(
        sub, "consume", help="print a topic's records as JSON lines",
        examples=["makegood consume remedy.actions.v1 --from-beginning --until-idle 2 | jq -c '{user_id, action}'",
                  "makegood consume remedy.notices.v1 --group support-desk   # follow, committing what was printed"],
        description=f"Print the records of TOPIC ({topics}) as JSON lines on standard output. "
                    "Records that cannot be decoded are reported on standard error and skipped.")
    con.add_argument("topic", metavar="TOPIC", help="logical topic name, e.g. remedy.actions.v1")
    start = con.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true",
                       help="read every partition from offset 0, without a consumer group or commits")
    start.add_argument("--group", metavar="G",
                       help="read as consumer group G and commit what was printed "
                            "(default: no group, only records arriving from now on)")
    con.add_argument("--until-idle", type=_positive(float), metavar="SECONDS",
                     help="stop once no record has arrived for SECONDS")
    con.add_argument("--max", type=_positive(int), metavar="N", help="stop after printing N records")
    con.add_argument("--meta", action="store_true", help='add "_partition" and "_offset" to each line')
    con.set_defaults(func=consume)
