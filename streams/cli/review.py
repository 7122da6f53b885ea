"""`makegood review list|decide`: the reviewers' side of the cases on remedy.reviews.v1.

  makegood review list INC-20221015-PANGYO --reason LARGE_BUSINESS_LOSS
  makegood review decide 0b6f...-case-id --approve 300000 --reviewer rv-kim --note "receipts checked"
  makegood review decide 0b6f...-case-id --deny --reviewer rv-kim

`list` reads the review cases, the decisions and the review payouts without a consumer group
(safe on a live pipeline) and prints one line per case: no personal data (reporter, business
number, contacts, title) unless `--show-contact`. `decide` finds the case's reporter on
remedy.reviews.v1 and publishes a ReviewDecision keyed by that reporter to
remedy.review-decisions.v1, where the worker holding the reporter's cases pays it once
(processors/decisions.py). APPROVE names the additional compensation for the case in won; a
later decision for the same case tops up to a higher amount or changes nothing.
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from processors.decisions import review_rule_id
from processors.errors import InvalidRecord
from processors.model import ReviewCase, ReviewDecision, ReviewReason, Verdict
from processors.policy import load_policy
from processors.validate import validate_decision

from streams.cli.help import command
from streams.errors import CommandError
from streams.kafka.producer import Producer
from streams.kafka.reader import PartitionReader
from streams.kafka.topics import ACTIONS, DECISIONS, REVIEWS
from streams.settings import Settings
from streams.wire.codec import Codec
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec

DELIVERY_TIMEOUT_S = 35


@dataclass
class CaseView:
    """One case under review as reviewers see it: its reviews, decisions and review payouts."""
    reviews: list[ReviewCase] = field(default_factory=list)
    decisions: list[ReviewDecision] = field(default_factory=list)
    paid_krw: int = 0

    @property
    def latest(self) -> ReviewCase:
        return max(self.reviews, key=lambda r: (r.decided_at, len(r.report_ids)))

    @property
    def status(self) -> str:
        if not self.decisions:
            return "open"
        last = self.decisions[-1]
        said = f"approved {last.amount_krw:,} won" if last.verdict is Verdict.APPROVE else "denied"
        return f"{said}, paid {self.paid_krw:,} won" if self.paid_krw else said


def read_cases(settings: Settings, codec: Codec, *, payouts_rule: str | None = None) -> dict[str, CaseView]:
    """Every case on remedy.reviews.v1, with the decisions and review payouts made for it."""
    cases: dict[str, CaseView] = defaultdict(CaseView)
    with PartitionReader(settings) as reader:
        name = settings.topic(REVIEWS)
        for raw in reader.read(name, reader.whole(name)):
            c = codec.decode_obj("review_case", raw.value)
            cases[c.case_id].reviews.append(c)
        name = settings.topic(DECISIONS)
        for raw in reader.read(name, reader.whole(name)):
            try:
                d = codec.decode_obj("review_decision", raw.value)
            except Exception:   # noqa: BLE001 - a bad decision is the workers' dead letter, not ours
                continue
            if d.case_id in cases:
                cases[d.case_id].decisions.append(d)
        if payouts_rule is not None:
            name = settings.topic(ACTIONS)
            for raw in reader.read(name, reader.whole(name)):
                r = codec.decode_obj("remedy_action", raw.value)
                if r.rule_id == payouts_rule and r.subject_id in cases:
                    cases[r.subject_id].paid_krw += r.amount_krw or 0
    return dict(cases)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    policy = load_policy(str(settings.policy_path))
    cases = read_cases(settings, codec, payouts_rule=review_rule_id(policy))
    rows = []
    for case_id, view in sorted(cases.items()):
        c = view.latest
        if c.incident_id != args.incident_id:
            continue
        reasons = sorted({r.reason.name for r in view.reviews})
        if args.reason and args.reason not in reasons:
            continue
        if args.open and view.decisions:
            continue
        loss = f"{c.claimed_loss_krw:,}" if c.claimed_loss_krw is not None else "-"
        line = (f"{case_id}  {','.join(reasons):24} {c.reporter_kind.name:10} {c.service:14} "
                f"{loss:>13}  {len(c.report_ids):>3}  {view.status}")
        if args.show_contact:
            line += (f"\n    reporter {c.reporter_id}, business {c.business_id or '-'}, "
                     f"email {c.contact_email or '-'}, phone {c.contact_phone or '-'}, title {c.title!r}")
        rows.append(line)
    if not rows:
        print(f"no review cases for {args.incident_id}" + (f" with reason {args.reason}" if args.reason else ""))
        return 0
    print(f"{'case':36}  {'reason':24} {'reporter':10} {'service':14} {'claimed won':>13}  rep  status")
    print("\n".join(rows))
    print(f"{len(rows)} case(s)")
    return 0


def _decide(args: argparse.Namespace, settings: Settings) -> int:
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    view = read_cases(settings, codec).get(args.case_id)
    if view is None:
        raise CommandError(f"review decide: no case {args.case_id} on {settings.topic(REVIEWS)}; "
                           "`makegood review list INCIDENT` lists them")
    case = view.latest
    if args.review is not None and args.review not in {r.review_id for r in view.reviews}:
        raise CommandError(f"review decide: review {args.review} is not a review of case {args.case_id}")
    decision = ReviewDecision(
        case_id=case.case_id, review_id=args.review, reporter_id=case.reporter_id,
        verdict=Verdict.DENY if args.deny else Verdict.APPROVE,
        amount_krw=None if args.deny else args.approve, reviewer_id=args.reviewer, note=args.note,
        decided_at=int(time.time() * 1000))
    try:
        validate_decision(decision)
    except InvalidRecord as exc:
        raise CommandError(f"review decide: {exc.reason}") from None
    producer = Producer(settings, **{"message.timeout.ms": (DELIVERY_TIMEOUT_S - 5) * 1000})
    try:
        real = settings.topic(DECISIONS)
        producer.send_batch_sync([(real, case.reporter_id.encode(), codec.encode_obj("review_decision", decision),
                                   None)], DELIVERY_TIMEOUT_S)
    finally:
        producer.close(DELIVERY_TIMEOUT_S)
    said = f"APPROVE {args.approve:,} won" if not args.deny else "DENY"
    print(f"published to {real}: case {case.case_id} {said} by {args.reviewer}; the workers pay it once "
          f"(see `makegood consume {ACTIONS}`)")
    return 0


def _won(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole won, e.g. 300000, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the approved amount must be positive")
    return value


def register(sub: Any) -> None:
    """Add the `review` command group to the `makegood` subparsers."""
    p = command(sub, "review", help="list cases under review and publish reviewers' decisions", description=__doc__,
                examples=["makegood review list INC-20221015-PANGYO --reason LARGE_BUSINESS_LOSS --open",
                          "makegood review decide CASE_ID --approve 300000 --reviewer rv-kim"])
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = command(actions, "list", help="the review cases of an incident, with their decisions and payouts",
                 examples=["makegood review list INC-20221015-PANGYO --reason LARGE_BUSINESS_LOSS",
                           "makegood review list INC-20221015-PANGYO --open --show-contact   # personal data: only when needed"])
    ls.add_argument("incident_id", metavar="INCIDENT_ID")
    ls.add_argument("--reason", choices=[r.name for r in ReviewReason], help="only cases opened for this reason")
    ls.add_argument("--open", action="store_true", help="only cases with no decision yet")
    ls.add_argument("--show-contact", action="store_true",
                    help="also print the reporter, business number, contacts and title (personal data)")
    ls.set_defaults(func=_list)
    d = command(actions, "decide", help="publish a reviewer's decision on a case",
                examples=["makegood review decide CASE_ID --approve 300000 --reviewer rv-kim --note 'receipts checked'",
                          "makegood review decide CASE_ID --deny --reviewer rv-kim"])
    d.add_argument("case_id", metavar="CASE_ID")
    verdict = d.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--approve", type=_won, metavar="WON", help="additional compensation for the case, in won")
    verdict.add_argument("--deny", action="store_true", help="no additional compensation")
    d.add_argument("--reviewer", required=True, metavar="ID", help="the reviewer's id (recorded with the decision)")
    d.add_argument("--note", help="the reviewer's note (kept with the decision only; never sent to the user)")
    d.add_argument("--review", metavar="REVIEW_ID", help="the review decided, when the case has several")
    d.set_defaults(func=_decide)
