"""`makegood report`: what one incident cost and how fast it was paid, read back from the topics.

Two halves, kept apart so the arithmetic is testable without a broker:
- `aggregate` is pure: decoded records (with their Kafka timestamps) in, a frozen
  `IncidentReport` out.
- `collect` is the shell: it reads the output topics from the beginning up to the end offsets
  they had when it started (its own `assign()`-ed consumer, never a group commit, so an SRE
  running it touches no worker's offsets), asks the ledger for the recorded outcomes and calls
  `aggregate`.

Review cases carry report text and contacts (DESIGN §4.5). They are decoded with a projection of
their schema that leaves those fields out, so personal data never even reaches this process's
memory as strings, let alone its output.
"""
from __future__ import annotations

import dataclasses
import enum
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from processors.model import (Action, IncidentStatus, OutageWindow, RemedyAction, ReviewCase,
                              ReviewReason, SubjectKind, UserNotice)

from streams.wire.codec import Codec, CodecError, SchemaRegistry
from streams.settings import Settings
from streams.kafka.topics import ACTIONS, DEADLETTER, ENTITLEMENTS, NOTICES, OUTAGES, REPORTS, REVIEWS
from streams.errors import ReadError, ReportError, UnknownIncident
from streams.report.cases import CaseMoney, money_per_case
from streams.report.money import EventTiming, Exposure, ExtensionValue, event_timing, exposure, extension_values
from streams.kafka.reader import PartitionReader

PERSONAL_FIELDS = frozenset({"title", "body", "contact_email", "contact_phone"})
INPUT_TOPICS = (OUTAGES, ENTITLEMENTS, REPORTS)
ERROR_SAMPLES = 3
ERROR_CHARS = 160
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class ReviewView:
    """The only review-case fields the report reads (a ReviewCase has them too)."""
    review_id: str
    incident_id: str | None
    reason: ReviewReason
    case_id: str = ""
    claimed_loss_krw: int | None = None
    decided_at: int = 0


# ------------------------------------------------------------------------------------ the report

@dataclass(frozen=True)
class IncidentInfo:
    incident_id: str
    site: str
    services: tuple[str, ...]
    status: str                 # of the latest revision
    revision: int               # the latest revision number
    revisions: int              # distinct revisions seen
    started_at: int
    ended_at: int | None
    duration_hours: float | None


@dataclass(frozen=True)
class RemedyRow:
    """Remedies of one (service, action). REVERSAL rows carry negative won and hours."""
    service: str
    action: str
    count: int
    won: int
    hours: int
    top_ups: int                # remedies whose `supersedes` tops up an earlier one
    reversed: int               # remedies of this row that a later REVERSAL took back


@dataclass(frozen=True)
class Totals:
    remedies: int               # distinct remedy ids
    duplicate_records: int      # records repeating an id already seen (billing dedups by id)
    won_credited: int
    won_paid_out: int
    won_reversed: int
    hours_extended: int
    hours_granted: int
    hours_reversed: int
    top_ups: int
    reversals: int
    users_reached: int
    entitlements_covered: int
    report_cases_paid: int


@dataclass(frozen=True)
class DeadLetterGroup:
    source_topic: str           # logical name
    stage: str
    count: int
    errors: tuple[str, ...]     # the first few distinct messages, shortened; never the raw value


@dataclass(frozen=True)
class Timing:
    closed_at: int | None       # Kafka timestamp of the first CLOSED revision record
    last_remedy_at: int | None  # Kafka timestamp of the last remedy record
    close_to_last_remedy_s: float | None
    remedies_in_span: int       # distinct remedies whose record landed in [closed_at, last_remedy_at]
    remedies_per_second: float | None


@dataclass(frozen=True)
class IncidentReport:
    incident: IncidentInfo
    remedies: tuple[RemedyRow, ...]
    totals: Totals
    reviews_by_reason: tuple[tuple[str, int], ...]
    notices_by_kind: tuple[tuple[str, int], ...]
    dead_letters: tuple[DeadLetterGroup, ...]
    timing: Timing
    outcomes: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]   # input topic -> outcome counts
    notes: tuple[str, ...] = ()
    approval: Any = None          # report.approval.ApprovalSection (None: could not be read)
    timezone: str = "UTC"                        # the incident's (the policy's `timezone`)
    per_case: tuple[CaseMoney, ...] = ()         # credits and payouts per subject, not per remedy id
    exposure: Exposure = Exposure(0, 0, 0, 0, 0)
    extensions: tuple[ExtensionValue, ...] = ()  # won value of extended hours, per service
    events: EventTiming = EventTiming(None, None, None, None, None)


def to_json(report: IncidentReport) -> dict[str, Any]:
    """The report as plain JSON values: count pairs become objects."""
    doc = dataclasses.asdict(report)
    doc["reviews_by_reason"] = dict(report.reviews_by_reason)
    doc["notices_by_kind"] = dict(report.notices_by_kind)
    doc["outcomes"] = {topic: dict(counts) for topic, counts in report.outcomes}
    doc["per_case"] = [{**dataclasses.asdict(c), "average": c.average} for c in report.per_case]
    return doc


# ------------------------------------------------------------------------------------ pure part

def _name(value: Any) -> str:
    return value.value if isinstance(value, enum.Enum) else str(value)


def _logical(topic: str, namespace: str) -> str:
    prefix = f"{namespace}." if namespace else ""
    return topic[len(prefix):] if prefix and topic.startswith(prefix) else topic


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= ERROR_CHARS else line[:ERROR_CHARS - 1] + "…"


def _incident(incident_id: str, windows: Sequence[OutageWindow]) -> IncidentInfo:
    latest = max(windows, key=lambda w: w.revision)
    hours = None if latest.ended_at is None else (latest.ended_at - latest.started_at) / HOUR_MS
    return IncidentInfo(incident_id, latest.site, tuple(latest.services), _name(latest.status),
                        latest.revision, len({w.revision for w in windows}), latest.started_at,
                        latest.ended_at, hours)


def _remedy_rows(remedies: Sequence[RemedyAction]) -> tuple[RemedyRow, ...]:
    reversed_ids = {r.supersedes for r in remedies if r.action is Action.REVERSAL and r.supersedes}
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in remedies:
        sign = -1 if r.action is Action.REVERSAL else 1
        row = acc[(r.service, r.action.value)]
        row[0] += 1
        row[1] += sign * (r.amount_krw or 0)
        row[2] += sign * (r.extend_hours or 0)
        row[3] += int(r.supersedes is not None and r.action is not Action.REVERSAL)
        row[4] += int(r.remedy_id in reversed_ids)
    order = {a.value: i for i, a in enumerate(Action)}
    return tuple(RemedyRow(s, a, *v) for (s, a), v in sorted(acc.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])))


def _totals(remedies: Sequence[RemedyAction], duplicates: int) -> Totals:
    def total(action: Action, attr: str) -> int:
        return sum(getattr(r, attr) or 0 for r in remedies if r.action is action)

    return Totals(
        remedies=len(remedies), duplicate_records=duplicates,
        won_credited=total(Action.CREDIT, "amount_krw"), won_paid_out=total(Action.PAYOUT, "amount_krw"),
        won_reversed=total(Action.REVERSAL, "amount_krw"),
        hours_extended=total(Action.EXTEND, "extend_hours"), hours_granted=total(Action.GRANT, "extend_hours"),
        hours_reversed=total(Action.REVERSAL, "extend_hours"),
        top_ups=sum(1 for r in remedies if r.supersedes is not None and r.action is not Action.REVERSAL),
        reversals=sum(1 for r in remedies if r.action is Action.REVERSAL),
        users_reached=len({r.user_id for r in remedies}),
        entitlements_covered=len({r.subject_id for r in remedies if r.subject_kind is SubjectKind.ENTITLEMENT}),
        report_cases_paid=len({r.subject_id for r in remedies
                               if r.subject_kind is SubjectKind.REPORT and r.action is Action.PAYOUT}))


def _dead_letters(records: Iterable[Mapping[str, Any]], namespace: str) -> tuple[DeadLetterGroup, ...]:
    seen: set[tuple[str, int, int]] = set()
    counts: Counter[tuple[str, str]] = Counter()
    samples: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in records:
        where = (d["source_topic"], int(d["source_partition"]), int(d["source_offset"]))
        if where in seen:       # the same poison record dead-lettered twice (a replay)
            continue
        seen.add(where)
        group = (_logical(d["source_topic"], namespace), _name(d["stage"]))
        counts[group] += 1
        message = _shorten(f"{d['error_class']}: {d['error_message']}")
        if len(samples[group]) < ERROR_SAMPLES and message not in samples[group]:
            samples[group].append(message)
    return tuple(DeadLetterGroup(t, s, n, tuple(samples[(t, s)])) for (t, s), n in sorted(counts.items()))


def _timing(windows: Sequence[tuple[OutageWindow, int | None]],
            remedies: Sequence[tuple[RemedyAction, int | None]]) -> Timing:
    closed = [ts for w, ts in windows if w.status is IncidentStatus.CLOSED and ts is not None]
    stamps = [ts for _, ts in remedies if ts is not None]
    closed_at = min(closed) if closed else None
    last = max(stamps) if stamps else None
    if closed_at is None or last is None:
        return Timing(closed_at, last, None, 0, None)
    span = (last - closed_at) / 1000
    in_span = len({r.remedy_id for r, ts in remedies if ts is not None and closed_at <= ts <= last})
    rate = in_span / span if span > 0 else None
    return Timing(closed_at, last, span, in_span, rate)


def aggregate(incident_id: str,
              windows: Iterable[tuple[OutageWindow, int | None]],
              remedies: Iterable[tuple[RemedyAction, int | None]],
              reviews: Iterable[ReviewCase | ReviewView],
              notices: Iterable[UserNotice],
              dead_letters: Iterable[Mapping[str, Any]],
              outcomes: Mapping[str, Mapping[str, int]] | None = None,
              *, namespace: str = "", notes: Sequence[str] = (), timezone: str = "UTC",
              prices: Mapping[str, tuple[int, int]] | None = None) -> IncidentReport:
    """The report of `incident_id` from records as read (duplicates included, any incident).

    Each window and remedy comes with the Kafka timestamp of its record (or None). Records of
    other incidents are ignored, except dead letters, which belong to no incident.
    """
    mine_w = [(w, ts) for w, ts in windows if w.incident_id == incident_id]
    if not mine_w:
        raise UnknownIncident(f"no revision of incident {incident_id!r} on {OUTAGES}")
    mine_r = [(r, ts) for r, ts in remedies if r.incident_id == incident_id]
    first: dict[str, RemedyAction] = {}
    for r, _ in mine_r:
        first.setdefault(r.remedy_id, r)
    distinct = list(first.values())
    mine_v = list({v.review_id: v for v in reviews if v.incident_id == incident_id}.values())
    review_ids: dict[str, ReviewReason] = {v.review_id: v.reason for v in mine_v}
    info = _incident(incident_id, [w for w, _ in mine_w])
    mine_n = [n for n in notices if n.incident_id == incident_id]
    notice_ids: dict[str, str] = {n.notice_id: n.kind.value for n in mine_n}
    return IncidentReport(
        incident=info,
        remedies=_remedy_rows(distinct),
        totals=_totals(distinct, len(mine_r) - len(distinct)),
        reviews_by_reason=tuple(sorted(Counter(r.value for r in review_ids.values()).items())),
        notices_by_kind=tuple(sorted(Counter(notice_ids.values()).items())),
        dead_letters=_dead_letters(dead_letters, namespace),
        timing=_timing(mine_w, mine_r),
        outcomes=tuple((t, tuple(sorted((outcomes or {}).get(t, {}).items()))) for t in INPUT_TOPICS),
        notes=tuple(notes), timezone=timezone, per_case=tuple(money_per_case(distinct)),
        exposure=exposure(mine_v, distinct, mine_n), extensions=extension_values(distinct, prices or {}),
        events=event_timing(info.started_at, info.ended_at, distinct))


# ------------------------------------------------------------------------------------ the shell

def read_until_end(settings: Settings, logicals: Sequence[str],
                   take: Callable[[str, bytes | None, int | None], None], *,
                   idle: float = 2.0, timeout: float = 120.0) -> None:
    """Every record of the topics from their first offset up to the end offsets they had when
    called (a snapshot: it finishes on a busy topic), read committed, moving nobody's offsets.
    `idle` is kept for callers; the reader finds the ends by itself."""
    deadline = time.monotonic() + timeout
    try:
        with PartitionReader(settings, stall_s=timeout) as reader:
            for logical in logicals:
                name = settings.topic(logical)
                spans = reader.whole(name)
                for batch in reader.batches(name, spans):
                    for raw in batch:
                        take(logical, raw.value, raw.timestamp)
                    if time.monotonic() > deadline:
                        raise ReportError(f"timed out after {timeout:.0f} s reading {name} to its end offsets")
    except ReadError as exc:
        raise ReportError(str(exc)) from None


def review_codec(codec: Codec) -> Codec:
    """A codec whose review_case reader schema lacks the personal fields (Avro skips them)."""
    declared = dict(codec.schema("review_case").declared)
    declared["fields"] = [f for f in declared["fields"] if f["name"] not in PERSONAL_FIELDS]
    registry: SchemaRegistry = codec.registry.with_version("review_case", declared, current=True)
    return codec.with_registry(registry)


def collect(settings: Settings, codec: Codec, incident_id: str, *, idle: float = 2.0,
            timeout: float = 120.0, timezone: str | None = None) -> IncidentReport:
    """Read the five topics up to their end offsets as of now, then aggregate.

    `idle`: after that long without a record, positions are compared with the end offsets
    (transaction markers or deleted records leave offsets no message will ever fill).
    """
    reviews_codec = review_codec(codec)
    windows: list[tuple[OutageWindow, int | None]] = []
    remedies: list[tuple[RemedyAction, int | None]] = []
    reviews: list[ReviewView] = []
    notices: list[UserNotice] = []
    dead: list[dict] = []
    bad: Counter[str] = Counter()

    def take(logical: str, value: bytes | None, ts: int | None) -> None:
        try:
            if logical == OUTAGES:
                windows.append((codec.decode_obj("outage_window", value), ts))
            elif logical == ACTIONS:
                r = codec.decode_obj("remedy_action", value)
                if r.incident_id == incident_id:
                    remedies.append((r, ts))
            elif logical == REVIEWS:
                d = reviews_codec.decode("review_case", value)
                reviews.append(ReviewView(d["review_id"], d["incident_id"], ReviewReason[d["reason"]],
                                          d["case_id"], d["claimed_loss_krw"], d["decided_at"]))
            elif logical == NOTICES:
                n = codec.decode_obj("user_notice", value)
                if n.incident_id == incident_id:
                    notices.append(n)
            else:
                d = codec.decode("dead_letter", value)
                d.pop("value", None), d.pop("key", None)   # raw bytes: never kept, never shown
                dead.append(d)
        except (CodecError, KeyError):
            bad[logical] += 1

    read_until_end(settings, [OUTAGES, ACTIONS, REVIEWS, NOTICES, DEADLETTER], take, idle=idle, timeout=timeout)
    prices = _prices(settings, codec, {r.subject_id for r, _ in remedies if r.action is Action.EXTEND}, bad, timeout)
    notes = [f"{n} record(s) on {t} could not be decoded and were left out" for t, n in sorted(bad.items())]
    outcomes: dict[str, dict[str, int]] = {}
    try:
        from streams.ledger.store import SyncLedger
        ledger = SyncLedger(settings)
        outcomes = {t: ledger.outcomes(t) for t in INPUT_TOPICS}
    except Exception as exc:  # noqa: BLE001 - redis errors of any kind: report without outcomes
        notes.append(f"recorded outcomes unavailable: Redis at {settings.redis_address}: {type(exc).__name__}")
    if timezone is None:
        from processors.policy import load_policy
        timezone = load_policy(str(settings.policy_path)).timezone
    report = aggregate(incident_id, windows, remedies, reviews, notices, dead, outcomes,
                       namespace=settings.namespace, notes=notes, timezone=timezone, prices=prices)
    try:
        from streams.report.approval import approval_section
        return dataclasses.replace(report, approval=approval_section(settings, codec, incident_id))
    except Exception as exc:  # noqa: BLE001 - Redis or policy trouble: the report without the section
        return dataclasses.replace(report, notes=report.notes + (f"approval state unavailable: {type(exc).__name__}",))


def _prices(settings: Settings, codec: Codec, wanted: set[str], bad: Counter[str],
            timeout: float) -> dict[str, tuple[int, int]]:
    """(price_krw, period_days) of the latest state of each wanted entitlement (keys filtered
    before decoding; a tombstone forgets the price)."""
    latest: dict[str, tuple[int, int, int]] = {}
    keys = {w.encode() for w in wanted}
    try:
        with PartitionReader(settings, stall_s=timeout) as reader:
            name = settings.topic(ENTITLEMENTS)
            for raw in reader.read(name, reader.whole(name)):
                if raw.key not in keys:
                    continue
                if raw.value is None:
                    latest.pop(raw.key.decode(), None)
                    continue
                try:
                    e = codec.decode("entitlement_state", raw.value)
                except CodecError:
                    bad[ENTITLEMENTS] += 1
                    continue
                held = latest.get(e["entitlement_id"])
                if held is None or held[0] <= e["updated_at"]:
                    latest[e["entitlement_id"]] = (e["updated_at"], e["price_krw"], e["period_days"])
    except ReadError as exc:
        raise ReportError(str(exc)) from None
    return {k: (p, d) for k, (_, p, d) in latest.items()}

