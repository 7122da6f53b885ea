"""Helpers for driving real `makegood worker` processes against the real broker and Redis."""
from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from confluent_kafka import Producer

from processors.batch import Evaluation
from processors.model import (BillingChannel, DamageReport, EntitlementKind, EntitlementState,
                              EntitlementStatus, IncidentStatus, OutageWindow, RemedyAction,
                              ReportCategory, ReporterKind, Source, to_dict)
from streams.decide.outputs import dead_letter_id
from streams.kafka.reader import PartitionReader
from streams.kafka.topics import ACTIONS, DEADLETTER, NOTICES, REVIEWS
from streams.wire.codec import Codec
from streams.dev.workers import WorkerPool
from streams.settings import Settings
from tests.integration.conftest import read_topic

HOUR = 3_600_000
DAY = 24 * HOUR
START = 1665814740000          # 2022-10-15T15:19:00+09:00
INCIDENT = "INC-20221015-PANGYO"
SERVICES = ["kakaotalk", "emoticon-plus", "melon", "kakaopage", "kakaowebtoon", "kakaotv", "gift", "shopping"]


class Workers(WorkerPool):
    """`makegood worker` subprocesses under one namespace (the demo's pool), plus test controls.
    They use the broker and Redis of the pool's settings (a test's private ones, or the shared)."""

    def start(self, n: int, env: dict[str, str] | None = None) -> None:
        # the workers' entitlement stores live with their logs (a restarted worker finds its own)
        super().start(n, env={**self.settings.client_env(), "MAKEGOOD_STATE_DIR": str(self.logdir / "state"),
                              **(env or {})})

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        self.procs[i].send_signal(sig)
        self.procs[i].wait(30)

    def alive(self) -> list[bool]:
        return [p.poll() is None for p in self.procs]

    def logs(self, tail: int = 6000) -> str:
        """The end of every worker's log, each under its name (for a failing assertion)."""
        return "\n".join(f"--- {p.name} (last {tail} characters)\n{p.read_text(errors='replace')[-tail:]}"
                         for p in sorted(self.logdir.glob("worker-*.log")))


SCHEMA_OF = {"outage.windows.v1": "outage_window", "entitlement.states.v1": "entitlement_state",
             "damage.reports.v1": "damage_report", "remedy.review-decisions.v1": "review_decision"}
KEY_OF = {"outage.windows.v1": "incident_id", "entitlement.states.v1": "entitlement_id",
          "damage.reports.v1": "reporter_id", "remedy.review-decisions.v1": "reporter_id"}


@dataclass
class Published:
    """What a test put on the input topics, with the Source of each record (for the oracle)."""
    windows: list = field(default_factory=list)
    entitlements: list = field(default_factory=list)
    reports: list = field(default_factory=list)
    decisions: list = field(default_factory=list)

    def add(self, logical: str, record: Any, source: Source) -> None:
        {"outage.windows.v1": self.windows, "entitlement.states.v1": self.entitlements,
         "damage.reports.v1": self.reports, "remedy.review-decisions.v1": self.decisions}[logical].append(
            (record, source))


def publish(settings: Settings, codec: Codec, logical: str, records: Iterable[Any],
            published: Published | None = None, raw: Iterable[tuple[bytes, bytes]] = (),
            writer: Codec | None = None) -> None:
    """Produce `records` (encoded by `writer`, default `codec`) and `raw` (key, value) pairs."""
    p = Producer(settings.producer_config(**{"enable.idempotence": True, "linger.ms": 5}))
    topic = settings.topic(logical)

    def delivered(err, msg, record=None):
        if err is not None:
            raise RuntimeError(err)
        if published is not None and record is not None:
            published.add(logical, record, Source(topic, msg.partition(), msg.offset()))

    for record in records:
        key = getattr(record, KEY_OF[logical]).encode()
        p.produce(topic, key=key, value=(writer or codec).encode_obj(SCHEMA_OF[logical], record),
                  on_delivery=lambda err, msg, r=record: delivered(err, msg, r))
        p.poll(0)
    for key, value in raw:
        p.produce(topic, key=key, value=value)
    assert p.flush(30) == 0


def remedies_on_topic(settings: Settings, codec: Codec, *, idle: float = 3.0) -> list[RemedyAction]:
    return [codec.decode_obj("remedy_action", m.value())
            for m in read_topic(settings, "remedy.actions.v1", idle=idle, timeout=120)]


def settle(settings: Settings, codec: Codec, expect: int, timeout: float = 180, workers: Workers | None = None,
           topic: str = "remedy.actions.v1") -> list:
    """Wait until at least `expect` distinct ids are on the topic (or the timeout); returns the records."""
    deadline = time.monotonic() + timeout
    seen: list = []
    while time.monotonic() < deadline:
        msgs = read_topic(settings, topic, idle=1.0, timeout=60)
        seen = msgs
        if len({m.value() for m in msgs}) >= expect:
            return msgs
        if workers is not None and not any(workers.alive()):
            raise AssertionError("every worker died:\n" + workers.logs())
        time.sleep(1.0)
    return seen


def as_rows(records: Iterable[Any]) -> set[str]:
    return {json.dumps(to_dict(r), sort_keys=True) for r in records}


# ------------------------------------------------------------------------------ tally

OUTPUTS = {ACTIONS: ("remedy_action", "remedy_id"), REVIEWS: ("review_case", "review_id"),
           NOTICES: ("user_notice", "notice_id")}


@dataclass
class Tally:
    """The output topics, read committed (as billing reads them), against the batch evaluator.

    missing: an id the evaluator (or a record owed a dead letter) has and no record carries;
    wrong: a record whose fields differ from the evaluator's record of its id, or whose id the
    evaluator does not have; duplicate: every record after the first with the same id
    (remedy_id, review_id, notice_id, or the dead letter's source record)."""
    missing: int = 0
    wrong: int = 0
    duplicate: int = 0
    records: int = 0
    problems: list[str] = field(default_factory=list)     # one line per record counted

    @property
    def clean(self) -> bool:
        return not (self.missing or self.wrong or self.duplicate)

    def line(self, name: str, seconds: float) -> str:
        return (f"{name}: {self.missing:,} missing, {self.wrong:,} wrong, {self.duplicate:,} duplicate "
                f"({self.records:,} records, {seconds:.1f} s)")

    @property
    def examples(self) -> list[str]:
        return self.problems[:6]

    def _note(self, text: str) -> None:
        self.problems.append(text)


def tally(settings: Settings, codec: Codec, expected: Evaluation, dead: Iterable[Source] = ()) -> Tally:
    """Read the four output topics to their end and count what differs from `expected` (and
    from one dead letter per record of `dead`)."""
    want: dict[str, dict[str, str | None]] = {
        topic: {getattr(r, id_field): json.dumps(to_dict(r), sort_keys=True) for r in records}
        for (topic, (_, id_field)), records in zip(OUTPUTS.items(), (expected.remedies, expected.reviews,
                                                                     expected.notices))}
    want[DEADLETTER] = {dead_letter_id(s): None for s in dead}
    t = Tally()
    with PartitionReader(settings, stall_s=30) as reader:
        for logical, owed in want.items():
            name = settings.topic(logical)
            seen: Counter = Counter()
            for raw in reader.read(name, reader.whole(name)):
                t.records += 1
                if logical == DEADLETTER:
                    d = codec.decode("dead_letter", raw.value)
                    oid, row = dead_letter_id(Source(d["source_topic"], d["source_partition"],
                                                     d["source_offset"])), None
                else:
                    schema, id_field = OUTPUTS[logical]
                    record = codec.decode_obj(schema, raw.value)
                    oid, row = getattr(record, id_field), json.dumps(to_dict(record), sort_keys=True)
                seen[oid] += 1
                if oid not in owed or (row is not None and row != owed[oid]):
                    t.wrong += 1
                    t._note(f"wrong on {logical}: {row or oid}")
            for oid, n in seen.items():
                if n > 1:
                    t.duplicate += n - 1
                    t._note(f"{n} records of {oid} on {logical}")
            for oid in sorted(set(owed) - set(seen)):
                t.missing += 1
                t._note(f"missing on {logical}: {owed[oid] or oid}")
    return t


# ------------------------------------------------------------------------------ scenarios

def windows(end_first: int = 120, end_amended: int = 127) -> list[OutageWindow]:
    base = dict(incident_id=INCIDENT, services=tuple(SERVICES), started_at=START, site="SK C&C Pangyo")
    return [
        OutageWindow(revision=1, status=IncidentStatus.OPEN, ended_at=None, published_at=START + HOUR, **base),
        OutageWindow(revision=2, status=IncidentStatus.CLOSED, ended_at=START + end_first * HOUR,
                     published_at=START + (end_first + 1) * HOUR, **base),
        OutageWindow(revision=3, status=IncidentStatus.CLOSED, ended_at=START + end_amended * HOUR,
                     published_at=START + (end_amended + 24) * HOUR, **base),
    ]


KINDS = {
    "emoticon-plus": [(EntitlementKind.SUBSCRIPTION, c) for c in (BillingChannel.WEB, BillingChannel.APP_STORE,
                                                                  BillingChannel.PLAY_STORE)],
    "melon": [(EntitlementKind.SUBSCRIPTION, c) for c in (BillingChannel.WEB, BillingChannel.CARRIER)],
    "kakaopage": [(EntitlementKind.RENTAL, BillingChannel.WEB)],
    "kakaowebtoon": [(EntitlementKind.RENTAL, BillingChannel.APP_STORE)],
    "kakaotv": [(EntitlementKind.VOD_PASS, BillingChannel.WEB)],
    "gift": [(EntitlementKind.VOUCHER, BillingChannel.NONE), (EntitlementKind.COUPON, BillingChannel.NONE)],
    "shopping": [(EntitlementKind.POINTS, BillingChannel.NONE)],
    "kakaotalk": [(EntitlementKind.MEMBERSHIP, BillingChannel.WEB)],
}


def entitlements(n: int, seed: int = 7, prefix: str = "e") -> list[EntitlementState]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        service = rnd.choice(list(KINDS))
        kind, channel = rnd.choice(KINDS[service])
        # validity spread so some end before, inside (incl. between 120 h and 127 h) and after the window
        valid_until = START + rnd.randint(-3 * 24, 10 * 24) * HOUR + rnd.choice([0, 30 * 60_000])
        period = 30 if kind is EntitlementKind.SUBSCRIPTION else rnd.choice([3, 7, 30])
        status = rnd.choices(list(EntitlementStatus), weights=[80, 8, 6, 3, 3])[0]
        out.append(EntitlementState(
            entitlement_id=f"{prefix}{i}", user_id=f"u{rnd.randint(0, n // 2)}", service=service, kind=kind,
            billing_channel=channel, status=status, valid_from=valid_until - period * DAY,
            valid_until=valid_until, price_krw=rnd.choice([0, 3900, 4900, 7590, 10900]),
            period_days=period, updated_at=START - rnd.randint(1, 100) * HOUR))
    return out


def reports(n: int, seed: int = 11) -> list[DamageReport]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        business = rnd.random() < 0.4
        reporter = f"biz{rnd.randint(0, n // 2)}" if business else f"u{rnd.randint(0, n)}"
        loss = rnd.choice([None, 120_000, 300_000, 420_000, 500_000, 800_000]) if business else None
        category = (ReportCategory.BUSINESS_LOSS if business
                    else rnd.choice([ReportCategory.PAID_SERVICE, ReportCategory.FREE_SERVICE, ReportCategory.OTHER]))
        out.append(DamageReport(
            report_id=f"r{i}", reporter_id=reporter,
            reporter_kind=ReporterKind.BUSINESS if business else ReporterKind.INDIVIDUAL,
            business_id=f"BRN-{reporter}" if business else None, service=rnd.choice(SERVICES),
            incident_id=INCIDENT if rnd.random() < 0.7 else None, category=category, claimed_loss_krw=loss,
            occurred_at=START + rnd.randint(1, 100) * HOUR, title="주문 누락", body="secret-body-%d" % i,
            contact_email=f"r{i}@example.com", contact_phone=None,
            submitted_at=START + (130 + i) * HOUR))
    return sorted(out, key=lambda r: (r.submitted_at, r.report_id))


def wait_outcomes(settings: Settings, topic: str, total: int, timeout: float = 120) -> dict[str, int]:
    """Wait until the workers recorded an outcome for `total` records of an input topic."""
    import redis as redis_lib
    from streams.ledger.store import Keys
    r = redis_lib.Redis.from_url(settings.redis_url, **settings.redis_kwargs())
    key = Keys(settings.redis_prefix).outcomes(topic)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = {k.decode(): int(v) for k, v in r.hgetall(key).items()}
        if sum(counts.values()) >= total:
            return counts
        time.sleep(0.5)
    raise AssertionError(f"{topic}: only {r.hgetall(key)} of {total} records processed")
