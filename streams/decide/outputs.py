"""What a batch of input records produced, and those outputs as records for the output topics.

`batch_outputs` lists every output once, in a stable order (remedies, reviews, notices of each
decision in turn, then dead letters); `encode_outputs` encodes them. Nothing is encoded before
the ledger check: ids already issued never are. The worker, its sweep processes and the replay
all go through these two functions, which is why a replay's bytes equal the worker's.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Sequence

from processors.model import Decision, Source

from streams.decide.admit import Rejection
from streams.errors import Stage
from streams.kafka.topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS
from streams.ledger.store import RemedyEntry
from streams.wire.codec import Codec

Record = tuple[str, str, bytes, bytes]      # (output id, logical topic, key, value)

ERROR_MESSAGE_MAX = 2000
# A dead letter must always fit on its topic, whatever it carries: a value (or key) larger than
# this keeps its first bytes, and the message says so with the full size and a SHA-256, so the
# record can still be found on its source topic at the offset the dead letter names.
DEAD_LETTER_BYTES_MAX = 64 * 1024


class Intake(StrEnum):
    """How an input record ended besides a processor decision (counted with the decisions'
    `processors.model.Outcome`s in the ledger's per-topic outcome counters)."""
    DECIDED = "decided"                        # an entitlement decided against every incident
    STORED_NO_INCIDENT = "stored-no-incident"  # stored; no incident known yet to decide it against
    TOMBSTONE = "tombstone"                    # an entitlement deleted (issued remedies stand)
    STALE = "stale"                            # an older state than the one stored: newer wins
    RETRIAGE = "retriage"                      # a re-triage request for a reporter's waiting reports


@dataclass
class DeadLetter:
    source: Source
    key: bytes | None
    value: bytes | None
    stage: Stage
    error_class: str
    error_message: str

    @classmethod
    def of(cls, source: Source, key: bytes | None, value: bytes | None, why: Rejection) -> "DeadLetter":
        return cls(source, key, value, why.stage, why.error_class, why.reason)

    @property
    def id(self) -> str:
        return dead_letter_id(self.source)


def dead_letter_id(source: Source) -> str:
    """The ledger id of the dead letter of an input record: one per record, however often read."""
    return f"dl|{source.topic}|{source.partition}|{source.offset}"


@dataclass
class Batch:
    """What one batch of input events produced; outcomes are counted per input topic."""
    decisions: list[Decision] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)

    def add(self, decision: Decision) -> None:
        self.decisions.append(decision)
        self.outcomes[decision.outcome] += 1

    def fail(self, dl: DeadLetter) -> None:
        self.dead.append(dl)
        self.outcomes[f"dead-letter:{dl.stage.lower()}"] += 1


def _bounded(data: bytes | None, what: str, notes: list[str]) -> bytes | None:
    if data is None or len(data) <= DEAD_LETTER_BYTES_MAX:
        return data
    notes.append(f"{what} truncated to its first {DEAD_LETTER_BYTES_MAX:,} of {len(data):,} bytes "
                 f"(sha256 {hashlib.sha256(data).hexdigest()})")
    return data[:DEAD_LETTER_BYTES_MAX]


def dead_letter_fields(dl: DeadLetter, failed_at: int) -> dict:
    """The dead_letter record of `dl`, bounded in size (see DEAD_LETTER_BYTES_MAX)."""
    notes: list[str] = []
    key = _bounded(dl.key, "key", notes)
    value = _bounded(dl.value, "value", notes)
    message = dl.error_message[:ERROR_MESSAGE_MAX - 300]
    return {"source_topic": dl.source.topic, "source_partition": dl.source.partition,
            "source_offset": dl.source.offset, "key": key, "value": value, "stage": dl.stage,
            "error_class": dl.error_class, "error_message": "; ".join([message, *notes]),
            "failed_at": failed_at}


def batch_outputs(batch: Batch) -> list[tuple[str, str, str, Any]]:
    """(id, logical topic, key, record) for every output in the batch, in a stable order, once
    each. Nothing is encoded yet: ids the ledger already has never are."""
    out: list[tuple[str, str, str, Any]] = []
    seen: set[str] = set()

    def add(oid: str, topic: str, key: str, record: Any) -> None:
        if oid not in seen:
            seen.add(oid)
            out.append((oid, topic, key, record))

    for d in batch.decisions:
        for r in d.remedies:
            add(r.remedy_id, ACTIONS, r.user_id, r)
        for c in d.reviews:
            add(c.review_id, REVIEWS, c.case_id, c)
        for n in d.notices:
            add(n.notice_id, NOTICES, n.user_id, n)
    for dl in batch.dead:
        add(dl.id, DEADLETTER, (dl.key or b"").decode("utf-8", "replace"), dl)
    return out


def encode_outputs(codec: Codec, outputs: Sequence[tuple[str, str, str, Any]]
                   ) -> tuple[list[Record], list[RemedyEntry]]:
    """Records for the outputs, and the ledger's index entries of the remedies among them (the
    same bytes)."""
    records: list[Record] = []
    remedies: list[RemedyEntry] = []
    encode, encode_obj = codec.encode, codec.encode_obj
    for oid, topic, key, rec in outputs:
        if topic == ACTIONS:
            value = encode_obj("remedy_action", rec)
            remedies.append((rec.user_id, oid, value))
        elif topic == REVIEWS:
            value = encode_obj("review_case", rec)
        elif topic == NOTICES:
            value = encode_obj("user_notice", rec)
        else:
            value = encode("dead_letter", dead_letter_fields(rec, int(time.time() * 1000)))
        records.append((oid, topic, key.encode(), value))
    return records, remedies
