"""`makegood status USER_ID`: what the support centre needs to answer one user.

Three sources, none of them a worker's state:
- remedies: the ledger's per-user index (Redis), the remedy_action records as issued;
- notices: remedy.notices.v1, keyed by user_id, so only the user's partition is read
  (streams/kafka/partition.py computes it as the producers place it);
- review cases: remedy.reviews.v1, decoded without the report text and contacts (the reader
  schema leaves them out), matched on reporter_id. A case is open until a reviewer's decision
  answers it: a remedy paid on it, or the REVIEW_DECIDED notice of its first decision (a DENY
  pays nothing) (streams/report/cases.py).

Totals are net won (credits and payouts less reversals) and days of service time (extended and
granted hours / 24). A user with none of the three exits 1 with one line on standard error.
Nothing here prints contact data or report text; notices carry only what the user was told.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from processors.model import Action, RemedyAction, ReviewReason, UserNotice

from streams.cli.help import command
from streams.errors import CommandError, ReadError, ReportError
from streams.kafka.partition import partition_for
from streams.kafka.reader import PartitionReader, Span
from streams.kafka.topics import NOTICES, REVIEWS
from streams.ledger.store import SyncLedger
from streams.report.cases import open_reviews
from streams.report.collect import review_codec
from streams.settings import Settings
from streams.wire.codec import Codec, CodecError
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.wire.jsonio import JsonRecords, format_timestamp

EXIT_UNKNOWN = 1


@dataclass(frozen=True)
class CaseView:
    """A review case as support sees it: no title, body or contacts."""
    review_id: str
    case_id: str
    incident_id: str | None
    service: str
    reason: ReviewReason
    claimed_loss_krw: int | None
    decided_at: int


@dataclass
class UserView:
    user_id: str
    remedies: list[RemedyAction] = field(default_factory=list)
    notices: list[UserNotice] = field(default_factory=list)
    cases: list[CaseView] = field(default_factory=list)
    open_ids: set[str] = field(default_factory=set)
    unreadable: int = 0

    @property
    def empty(self) -> bool:
        return not (self.remedies or self.notices or self.cases)

    def totals(self) -> dict[str, int]:
        def won(action: Action) -> int:
            return sum(r.amount_krw or 0 for r in self.remedies if r.action is action)

        def hours(action: Action) -> int:
            return sum(r.extend_hours or 0 for r in self.remedies if r.action is action)

        reversed_hours = hours(Action.REVERSAL)
        time_h = hours(Action.EXTEND) + hours(Action.GRANT) - reversed_hours
        open_cases = [c for c in self.cases if c.review_id in self.open_ids]
        return {"won_credited": won(Action.CREDIT), "won_paid_out": won(Action.PAYOUT),
                "won_reversed": won(Action.REVERSAL),
                "won_net": won(Action.CREDIT) + won(Action.PAYOUT) - won(Action.REVERSAL),
                "hours_extended": hours(Action.EXTEND), "hours_granted": hours(Action.GRANT),
                "hours_reversed": reversed_hours, "hours_net": time_h,
                "open_cases": len(open_cases),
                "open_claimed_won": sum(c.claimed_loss_krw or 0 for c in open_cases)}


def days(hours: int) -> str:
    d = hours / 24
    return f"{d:,.0f} days" if d == int(d) else f"{d:,.1f} days"


# ----------------------------------------------------------------------------- reading

def _notices(reader: PartitionReader, settings: Settings, codec: Codec, user_id: str, view: UserView) -> None:
    real = settings.topic(NOTICES)
    parts = reader.partitions(real)
    p = partition_for(user_id.encode(), len(parts))
    seen: set[str] = set()
    for raw in reader.read(real, [Span(p, *reader.watermarks(real, p))]):
        if raw.key != user_id.encode():
            continue
        try:
            n = codec.decode_obj("user_notice", raw.value)
        except CodecError:
            view.unreadable += 1
            continue
        if n.user_id == user_id and n.notice_id not in seen:
            seen.add(n.notice_id)
            view.notices.append(n)


def _cases(reader: PartitionReader, settings: Settings, codec: Codec, user_id: str, view: UserView) -> None:
    real = settings.topic(REVIEWS)
    seen: set[str] = set()
    for raw in reader.read(real, reader.whole(real)):
        try:
            d = codec.decode("review_case", raw.value)
        except CodecError:
            view.unreadable += 1
            continue
        if d["reporter_id"] == user_id and d["review_id"] not in seen:
            seen.add(d["review_id"])
            view.cases.append(CaseView(d["review_id"], d["case_id"], d["incident_id"], d["service"],
                                       ReviewReason[d["reason"]], d["claimed_loss_krw"], d["decided_at"]))


def load_user(settings: Settings, codec: Codec, user_id: str) -> UserView:
    view = UserView(user_id)
    try:
        raw = SyncLedger(settings).user_remedies(user_id)
    except Exception as exc:  # redis errors: one line
        raise CommandError(f"cannot read the ledger at {settings.redis_address}: {exc}") from None
    view.remedies = sorted((codec.decode_obj("remedy_action", v) for v in raw),
                           key=lambda r: (r.decided_at, r.remedy_id))
    try:
        with PartitionReader(settings) as reader:
            _notices(reader, settings, codec, user_id, view)
            _cases(reader, settings, review_codec(codec), user_id, view)
    except ReadError as exc:
        raise ReportError(str(exc)) from None
    view.notices.sort(key=lambda n: (n.decided_at, n.notice_id))
    view.cases.sort(key=lambda c: (c.decided_at, c.review_id))
    view.open_ids = {c.review_id for c in open_reviews(view.cases, view.remedies, view.notices)}
    return view


# ----------------------------------------------------------------------------- output

def _amount(r: RemedyAction) -> str:
    if r.amount_krw is not None:
        return f"{r.amount_krw:,} won"
    return f"{r.extend_hours:,} h" if r.extend_hours is not None else ""


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int] = frozenset()) -> list[str]:
    table = [head] + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return ["  " + "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in
                             enumerate(zip(row, widths))).rstrip() for row in table]


def render(view: UserView) -> str:
    out = [f"user {view.user_id}", ""]
    out.append(f"Remedies ({len(view.remedies)})")
    if view.remedies:
        out += _table(("action", "service", "hours / won", "rule", "incident", "decided_at", "remedy_id", "supersedes"),
                      [(r.action.value, r.service, _amount(r), r.rule_id, r.incident_id,
                        str(format_timestamp(r.decided_at)), r.remedy_id, r.supersedes or "-")
                       for r in view.remedies], {2})
    else:
        out.append(f"  no remedies recorded for {view.user_id} in the ledger")
    out += ["", f"Notices ({len(view.notices)})"]
    if view.notices:
        out += _table(("kind", "incident", "decided_at", "remedies", "message"),
                      [(n.kind.value, n.incident_id or "-", str(format_timestamp(n.decided_at)),
                        ", ".join(n.remedy_ids) or "-", " ".join(n.message.split())) for n in view.notices])
    else:
        out.append("  none")
    n_open = sum(c.review_id in view.open_ids for c in view.cases)
    out += ["", f"Review cases ({len(view.cases)}, {n_open} open)"]
    if view.cases:
        out += _table(("case", "state", "reason", "service", "claimed won", "incident", "opened_at"),
                      [(c.case_id, "open" if c.review_id in view.open_ids else "decided", c.reason.value,
                        c.service, "-" if c.claimed_loss_krw is None else f"{c.claimed_loss_krw:,}",
                        c.incident_id or "-", str(format_timestamp(c.decided_at))) for c in view.cases], {4})
    else:
        out.append("  none")
    t = view.totals()
    out += ["", "Totals",
            f"  money  {t['won_net']:,} won net (credited {t['won_credited']:,}, paid out {t['won_paid_out']:,}, "
            f"reversed {t['won_reversed']:,})",
            f"  time   {days(t['hours_net'])} ({t['hours_net']:,} h: extended {t['hours_extended']:,}, "
            f"granted {t['hours_granted']:,}, reversed {t['hours_reversed']:,})",
            f"  review {t['open_cases']} open case(s) claiming {t['open_claimed_won']:,} won"]
    if view.unreadable:
        out.append(f"note: {view.unreadable} record(s) could not be decoded and were left out")
    return "\n".join(out) + "\n"


def as_json(view: UserView, codec: Codec) -> dict[str, Any]:
    from processors.model import to_dict
    records = JsonRecords(codec)
    return {"user_id": view.user_id,
            "remedies": [records.to_json("remedy_action", to_dict(r)) for r in view.remedies],
            "notices": [records.to_json("user_notice", to_dict(n)) for n in view.notices],
            "review_cases": [{"review_id": c.review_id, "case_id": c.case_id, "incident_id": c.incident_id,
                              "service": c.service, "reason": c.reason.value,
                              "claimed_loss_krw": c.claimed_loss_krw,
                              "opened_at": format_timestamp(c.decided_at),
                              "state": "open" if c.review_id in view.open_ids else "decided"} for c in view.cases],
            "totals": {**view.totals(), "days_net": view.totals()["hours_net"] / 24}}


def status(args: argparse.Namespace, settings: Settings) -> int:
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    view = load_user(settings, codec, args.user_id)
    if view.empty:
        where = f" in namespace {settings.namespace!r}" if settings.namespace else ""
        print(f"makegood status: no remedies, notices or review cases for user {args.user_id!r}{where}",
              file=sys.stderr)
        return EXIT_UNKNOWN
    if args.json:
        print(json.dumps(as_json(view, codec), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        sys.stdout.write(render(view))
    return 0


def register(sub: Any) -> None:
    """Add `status` to the makegood parser."""
    st = command(sub, "status", help="what one user received: remedies, notices and review cases, with totals",
                 description=__doc__,
                 examples=["makegood status u-000123",
                           "makegood status u-000123 --json | jq .totals"])
    st.add_argument("user_id", metavar="USER_ID")
    st.add_argument("--json", action="store_true", help="one JSON document instead of tables")
    st.set_defaults(func=status)
