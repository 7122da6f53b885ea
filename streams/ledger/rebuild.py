"""`makegood ledger rebuild`: restore the Redis ledger from the output topics after Redis was lost.

The ledger is a cache of what the output topics already hold (an id is ledgered only after the
broker acknowledged its record), so re-reading them from the beginning restores it:
- the SET of issued ids, from remedy.actions.v1, remedy.reviews.v1, remedy.notices.v1 and also
  remedy.deadletter.v1 — workers ledger dead-letter ids too, and a restarted worker re-reads the
  whole outage topic, so without them every poison window would be dead-lettered a second time;
- each user's remedy index, with exactly the bytes the worker writes (the record's value).

SADD and HSET are idempotent, so running it twice, or while workers run, is harmless. The
per-topic outcome counters (`outcomes:<topic>`) count no-ops that left no record anywhere and
cannot be rebuilt.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from processors.errors import MakegoodError
from processors.model import RemedyAction, Source

from streams.wire.codec import Codec, DecodeError
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.decide.outputs import dead_letter_id
from streams.ledger.store import RemedyEntry, SyncLedger
from streams.kafka.reader import PartitionReader
from streams.settings import Settings
from streams.kafka.topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS
from streams.errors import RebuildError

OUTPUT_TOPICS = (ACTIONS, REVIEWS, NOTICES, DEADLETTER)
CHUNK = 5000


@dataclass
class RebuildResult:
    records: Counter = field(default_factory=Counter)      # read, per topic
    undecodable: Counter = field(default_factory=Counter)  # per topic
    ids: int = 0              # distinct ids found
    missing: int = 0          # of those, not in the ledger before the rebuild
    users: int = 0            # users with at least one remedy
    ledger_size: int = 0      # after (before, on a dry run)


def output_id(topic: str, codec: Codec, value: bytes | None) -> tuple[str, RemedyAction | None]:
    """The ledger id of an output record (and the remedy itself, for the user index)."""
    if topic == ACTIONS:
        r = codec.decode_obj("remedy_action", value)
        return r.remedy_id, r
    if topic == REVIEWS:
        return codec.decode_obj("review_case", value).review_id, None
    if topic == NOTICES:
        return codec.decode_obj("user_notice", value).notice_id, None
    d = codec.decode("dead_letter", value)
    return dead_letter_id(Source(d["source_topic"], d["source_partition"], d["source_offset"])), None


def rebuild_ledger(settings: Settings, *, dry_run: bool = False, progress: bool = True,
                   note: Callable[[str], None] = lambda _m: None) -> RebuildResult:
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    ledger = SyncLedger(settings)
    reader = PartitionReader(settings, progress=progress)
    result = RebuildResult()
    seen: set[str] = set()
    users: set[str] = set()
    try:
        for topic in OUTPUT_TOPICS:
            real = settings.topic(topic)
            ids: list[str] = []
            remedies: list[RemedyEntry] = []
            for raw in reader.read(real, reader.whole(real), f"reading {topic}"):
                result.records[topic] += 1
                try:
                    oid, remedy = output_id(topic, codec, raw.value)
                except DecodeError as exc:
                    result.undecodable[topic] += 1
                    note(f"{real} partition {raw.partition} offset {raw.offset}: {exc.reason}")
                    continue
                if oid in seen:
                    continue          # an exact re-publication after a crash: same id, same record
                seen.add(oid)
                ids.append(oid)
                if remedy is not None:
                    remedies.append((remedy.user_id, oid, raw.value))
                    users.add(remedy.user_id)
                if len(ids) >= CHUNK:
                    result.missing += _write(ledger, ids, remedies, dry_run)
                    ids, remedies = [], []
            result.missing += _write(ledger, ids, remedies, dry_run)
        result.ids = len(seen)
        result.users = len(users)
        result.ledger_size = _call(ledger.size)
    finally:
        reader.close()
    return result


def _write(ledger: SyncLedger, ids: list[str], remedies: list[RemedyEntry], dry_run: bool) -> int:
    """Ledger the ids and index the remedies; returns how many ids the ledger lacked."""
    if not ids:
        return 0
    if dry_run:
        return len(ids) - len(_call(lambda: ledger.issued(ids)))
    return _call(lambda: ledger.record(ids, remedies))


def _call(op: Callable[[], Any]) -> Any:
    try:
        return op()
    except MakegoodError:
        raise
    except Exception as exc:  # redis.ConnectionError and friends: one line, not a traceback
        raise RebuildError(f"ledger (Redis) failed: {type(exc).__name__}: {exc}") from None
