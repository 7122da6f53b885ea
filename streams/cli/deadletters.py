"""`makegood deadletters`: what was dead-lettered and why, and `deadletters redrive` after a fix.

A dead letter (schemas/dead_letter.avsc) holds the source record whole: topic, partition, offset,
key and value bytes, the stage that refused it and why. The listing names each one by its source
coordinates, `TOPIC:PARTITION:OFFSET`, the selector `redrive` takes. Keys print as text when they
are UTF-8 (base64 otherwise); values are previewed decoded (Avro of the source topic's schema, or
JSON), with report text and contacts replaced by <redacted>, and cut to --width characters. A
value that is neither is described by size and first bytes, never printed.

redrive re-publishes the chosen records, key and value unchanged, to their source topic, so the
workers decide them as if they had just arrived. Before that each one is checked exactly as a
worker admits it (decode, validate under the current policy, key): one that would only be
dead-lettered again is left where it is. Only input topics are redriven. Each dead letter is
redriven at most once: the Redis hash `<prefix>redriven` (streams/ledger/redrive.py) records it,
and remedies are idempotent anyway (deterministic ids, the ledger).
"""
from __future__ import annotations

import argparse
import base64
import json
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

from processors.model import Source
from processors.policy import load_policy

from streams.cli.help import command
from streams.decide.admit import Admission, Rejection
from streams.decide.outputs import dead_letter_id
from streams.errors import CommandError, LedgerError, ProduceError, ReadError
from streams.kafka.reader import PartitionReader
from streams.kafka.topics import DEADLETTER, INPUT_TOPICS, TOPIC_SCHEMAS
from streams.ledger.redrive import RedriveLog
from streams.report.collect import PERSONAL_FIELDS
from streams.settings import Settings
from streams.wire.codec import CodecError
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.wire.jsonio import JsonRecords, format_timestamp, parse_timestamp

PREVIEW_CHARS = 160
ERROR_CHARS = 200
EXIT_SKIPPED = 2
_RELATIVE = re.compile(r"^(\d+)([mhd])$")
_SELECTOR = re.compile(r"^(.+):(\d+):(\d+)$")


@dataclass(frozen=True)
class Letter:
    topic: str                  # logical source topic
    real_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    stage: str
    error: str
    failed_at: int

    @property
    def selector(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def id(self) -> str:
        return dead_letter_id(Source(self.real_topic, self.partition, self.offset))


# ----------------------------------------------------------------------------- showing

def show_key(key: bytes | None) -> str:
    """The key as text when it is printable UTF-8, `base64:...` otherwise, `-` when absent."""
    if key is None:
        return "-"
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and text.isprintable():
        return text
    return "base64:" + base64.b64encode(key).decode()


def redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<redacted>" if k in PERSONAL_FIELDS and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def preview(letter: Letter, records: JsonRecords, width: int = PREVIEW_CHARS) -> str:
    """A one-line, personal-data-free view of the dead letter's value."""
    v = letter.value
    if v is None:
        return "(no value)"
    schema = TOPIC_SCHEMAS.get(letter.topic)
    if schema is not None:
        try:
            return "avro " + _cut(json.dumps(redact(records.decode(schema, v)), ensure_ascii=False), width)
        except CodecError:
            pass
    for other in dict.fromkeys(TOPIC_SCHEMAS.values()):    # a record of another topic's schema
        if other == schema:
            continue
        try:
            decoded = records.decode(other, v)
        except CodecError:
            continue
        return f"avro ({other}, not {schema}) " + _cut(json.dumps(redact(decoded), ensure_ascii=False), width)
    try:
        obj = json.loads(v.decode("utf-8"))
        return "json " + _cut(json.dumps(redact(obj), ensure_ascii=False), width)
    except (UnicodeDecodeError, ValueError):
        pass
    try:
        v.decode("utf-8")
        return f"text, {len(v):,} bytes, not Avro or JSON (not shown: it may hold personal data)"
    except UnicodeDecodeError:
        return f"binary, {len(v):,} bytes, not {schema or 'Avro'}; first bytes {v[:8].hex(' ')}"


# ----------------------------------------------------------------------------- reading

def parse_since(text: str | None, now_ms: int) -> int | None:
    """`30m`, `2h`, `3d` before now, ISO-8601 with an offset, or epoch millis."""
    if text is None:
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        return now_ms - int(m.group(1)) * {"m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]
    raw = text.strip()
    return parse_timestamp(int(raw) if re.fullmatch(r"\d+", raw) else raw, "--since")


def read_letters(settings: Settings, codec, *, topic: str | None, since_ms: int | None,
                 stage: str | None = None) -> list[Letter]:
    """The dead letters (one per source record, first kept), oldest first, filtered."""
    if topic is not None and topic not in INPUT_TOPICS + tuple(TOPIC_SCHEMAS):
        raise CommandError(f"unknown topic {topic!r}; dead letters come from: {', '.join(INPUT_TOPICS)}")
    prefix = f"{settings.namespace}." if settings.namespace else ""
    real = settings.topic(DEADLETTER)
    out: dict[tuple[str, int, int], Letter] = {}
    bad = 0
    try:
        with PartitionReader(settings) as reader:
            spans = reader.since(real, since_ms) if since_ms is not None else reader.whole(real)
            for raw in reader.read(real, spans):
                try:
                    d = codec.decode("dead_letter", raw.value)
                except CodecError:
                    bad += 1
                    continue
                src = d["source_topic"]
                logical = src[len(prefix):] if prefix and src.startswith(prefix) else src
                where = (src, int(d["source_partition"]), int(d["source_offset"]))
                if where in out:
                    continue
                out[where] = Letter(logical, src, where[1], where[2], d["key"], d["value"], str(d["stage"]),
                                    " ".join(f"{d['error_class']}: {d['error_message']}".split()), d["failed_at"])
    except ReadError as exc:
        raise CommandError(str(exc)) from None
    if bad:
        print(f"note: {bad} record(s) on {real} could not be decoded", file=sys.stderr)
    return sorted((x for x in out.values()
                   if (topic is None or x.topic == topic) and (stage is None or x.stage == stage)
                   and (since_ms is None or x.failed_at >= since_ms)),
                  key=lambda x: (x.failed_at, x.topic, x.partition, x.offset))


# ----------------------------------------------------------------------------- list

def list_letters(args: argparse.Namespace, settings: Settings) -> int:
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    letters = read_letters(settings, codec, topic=args.topic, stage=args.stage,
                           since_ms=parse_since(args.since, int(time.time() * 1000)))
    shown = letters[-args.limit:] if args.limit else letters
    log = RedriveLog(settings)
    try:
        states = log.states([x.id for x in shown])
    except LedgerError as exc:      # the listing stands without the redrive marks
        states = {}
        print(f"note: redrive state unknown: {exc}", file=sys.stderr)
    finally:
        log.close()
    records = JsonRecords(codec)
    for x in shown:
        state = states.get(x.id, "")
        if args.json:
            print(json.dumps({"selector": x.selector, "source_topic": x.topic, "source_partition": x.partition,
                              "source_offset": x.offset, "stage": x.stage, "error": _cut(x.error, ERROR_CHARS),
                              "failed_at": format_timestamp(x.failed_at), "key": show_key(x.key),
                              "value_preview": preview(x, records, args.width), "redrive": state or None},
                             ensure_ascii=False, sort_keys=True))
            continue
        print(f"{x.selector}  {format_timestamp(x.failed_at)}  {x.stage}"
              + (f"  [redriven: {state}]" if state else ""))
        print(f"  why    {_cut(x.error, ERROR_CHARS)}")
        print(f"  key    {show_key(x.key)}")
        print(f"  value  {preview(x, records, args.width)}")
    sys.stdout.flush()
    what = f" from {args.topic}" if args.topic else ""
    more = f" (the last {len(shown)} shown; --limit 0 for all)" if len(shown) < len(letters) else ""
    print(f"{len(letters):,} dead letter(s){what}{more}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- redrive

def choose(letters: Sequence[Letter], selectors: Sequence[str], everything: bool) -> list[Letter]:
    if not selectors:
        if not everything:
            raise CommandError("name the dead letters to redrive (TOPIC:PARTITION:OFFSET, as "
                               "`makegood deadletters` lists them), or pass --all to take every one the "
                               "filters (--topic, --since, --stage) select")
        return list(letters)
    by_selector = {x.selector: x for x in letters}
    chosen, unknown = [], []
    for s in selectors:
        if _SELECTOR.match(s) is None:
            raise CommandError(f"{s!r} is not TOPIC:PARTITION:OFFSET (e.g. damage.reports.v1:2:1041)")
        (chosen if s in by_selector else unknown).append(by_selector.get(s, s))
    if unknown:
        raise CommandError(f"no dead letter for {', '.join(unknown)} (under the filters given)")
    return list({x.selector: x for x in chosen}.values())


def redrive(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.producer import Producer
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    letters = read_letters(settings, codec, topic=args.topic, stage=args.stage,
                           since_ms=parse_since(args.since, int(time.time() * 1000)))
    chosen = choose(letters, args.selectors, args.all)
    admission = Admission(codec, load_policy(str(settings.policy_path)))
    log = RedriveLog(settings)
    states = log.states([x.id for x in chosen])
    ready: list[Letter] = []
    skipped = 0
    for x in chosen:
        why = _refusal(x, admission, states.get(x.id), args.force)
        if why is None:
            ready.append(x)
        else:
            skipped += why[0]
            print(f"{x.selector}: {why[1]}", file=sys.stderr)
    if args.dry_run or not ready:
        for x in ready:
            print(f"{x.selector}: would redrive to {settings.topic(x.topic)} (key {show_key(x.key)})")
        print(f"dry run, nothing published: {len(ready)} would be redriven" if args.dry_run
              else "nothing to redrive", file=sys.stderr)
        log.close()
        return EXIT_SKIPPED if skipped else 0
    if not args.yes:
        _confirm(len(ready))
    producer = Producer(settings, **{"linger.ms": 0, "message.timeout.ms": 30_000})
    done = 0
    try:
        for x in ready:
            if not log.claim(x.id, force=args.force):
                print(f"{x.selector}: being redriven by someone else; skipped", file=sys.stderr)
                continue
            try:
                ((p, o),) = producer.send_batch_sync([(settings.topic(x.topic), x.key, x.value, None)], 35)
            except ProduceError as exc:
                log.release(x.id)
                raise CommandError(f"{x.selector}: not published ({exc}); {done} redriven before it") from None
            log.published(x.id, p, o)
            done += 1
            print(f"{x.selector}: redriven to {settings.topic(x.topic)} partition {p} offset {o}")
    finally:
        producer.close()
        log.close()
    print(f"redrove {done} dead letter(s); {skipped} left where they are", file=sys.stderr)
    return EXIT_SKIPPED if skipped else 0


def _refusal(x: Letter, admission: Admission, state: str | None, force: bool) -> tuple[int, str] | None:
    """(counts as skipped, why) when `x` must not be redriven now; None when it may."""
    if x.topic not in INPUT_TOPICS:
        return 1, f"from {x.topic}, not an input topic; only {', '.join(INPUT_TOPICS)} are redriven"
    if state is not None and state.startswith("published") and not force:
        return 0, f"already redriven ({state.split(' ')[1]} on {x.topic}); --force to send it again"
    if state is not None and not force:
        return 1, "an earlier redrive was interrupted while publishing it; check the source topic, then --force"
    if x.value is None:
        return 1, "the dead letter holds no value"
    got = admission.check(TOPIC_SCHEMAS[x.topic], x.value, x.key)
    if isinstance(got, Rejection):
        return 1, f"still refused ({got.stage}: {_cut(' '.join(got.reason.split()), ERROR_CHARS)}); not redriven"
    return None


def _confirm(n: int) -> None:
    if not sys.stdin.isatty():
        raise CommandError(f"refusing to redrive {n} dead letter(s) without confirmation: no terminal to ask on; "
                           "pass --yes")
    sys.stderr.write(f"re-publish {n} dead letter(s) to their source topics? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise CommandError("not confirmed; nothing redriven")


# ----------------------------------------------------------------------------- argparse

def _filters(p: argparse.ArgumentParser, default: Any = None) -> None:
    """The selection options; on `redrive` they default to SUPPRESS so filters given before the
    word `redrive` (`deadletters --topic T redrive --all`) are kept, not reset."""
    p.add_argument("--topic", metavar="T", default=default,
                   help=f"only dead letters from source topic T ({', '.join(INPUT_TOPICS)})")
    p.add_argument("--since", metavar="WHEN", default=default,
                   help="only those dead-lettered since WHEN: 30m, 2h, 3d, ISO-8601 with an offset, or epoch millis")
    p.add_argument("--stage", choices=["DECODE", "VALIDATE", "PROCESS"], default=default,
                   help="only this failure stage")


def _natural(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {text!r}")
    return int(text)


def register(sub: Any) -> None:
    """Add `deadletters` (list, the default) and `deadletters redrive`."""
    dl = command(sub, "deadletters", help="list dead letters with the reason and a readable preview; redrive them",
                 description=__doc__,
                 examples=["makegood deadletters --topic damage.reports.v1 --since 2h",
                           "makegood deadletters --stage DECODE --limit 5 --json | jq .value_preview",
                           "makegood deadletters redrive entitlement.states.v1:1:4077 --dry-run"])
    _filters(dl)
    dl.add_argument("--limit", type=_natural, default=50, metavar="N", help="show the last N (50; 0 for all)")
    dl.add_argument("--width", type=_natural, default=PREVIEW_CHARS, metavar="CHARS",
                    help=f"cut value previews to CHARS ({PREVIEW_CHARS})")
    dl.add_argument("--json", action="store_true", help="JSON lines instead of text")
    dl.set_defaults(func=list_letters)
    actions = dl.add_subparsers(dest="deadletters_action", metavar="ACTION")
    rd = command(actions, "redrive", help="re-publish chosen dead letters to their source topic after a fix",
                 examples=["makegood deadletters redrive entitlement.states.v1:1:4077 damage.reports.v1:0:12",
                           "makegood deadletters redrive --all --topic damage.reports.v1 --since 1d --dry-run"])
    rd.add_argument("selectors", nargs="*", metavar="TOPIC:PARTITION:OFFSET",
                    help="dead letters by source coordinates, as the listing shows them")
    _filters(rd, argparse.SUPPRESS)
    rd.add_argument("--all", action="store_true", help="every dead letter the filters select")
    rd.add_argument("--dry-run", action="store_true", help="check and list; publish nothing")
    rd.add_argument("--yes", action="store_true", help="publish without asking")
    rd.add_argument("--force", action="store_true", help="redrive even if recorded as redriven (or interrupted)")
    rd.set_defaults(func=redrive)
