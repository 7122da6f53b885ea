"""SRE commands: `makegood replay` and `makegood ledger rebuild` (`status` is in support.py).

Standard output carries the product of a command (remedies as JSON lines, cost tables, a user's
remedies); standard error carries progress and summaries, so `replay --dry-run | jq` works.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from processors.model import Action, RemedyAction, to_dict
from processors.policy import load_policy

from streams.cli.help import command
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.wire.jsonio import JsonRecords, parse_timestamp
from streams.replay.replay import DEFAULT_MAX_RECORDS, Replay, ReplayError, parse_offsets
from streams.settings import Settings
from streams.kafka.topics import ACTIONS, INPUT_TOPICS, NOTICES, OUTAGES, REVIEWS


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def parse_time(text: str | None, option: str) -> int | None:
    """ISO-8601 with an offset, or epoch millis."""
    if text is None:
        return None
    value = parse_timestamp(int(text) if re.fullmatch(r"-?\d+", text.strip()) else text, option)
    if value < 0:
        raise ReplayError(f"{option}: {text} is before 1970")
    return value


# ----------------------------------------------------------------------------- costs

@dataclass
class Cost:
    count: int = 0
    won: int = 0
    hours: int = 0

    def add(self, r: RemedyAction, sign: int = 1) -> None:
        self.count += 1
        self.won += sign * (r.amount_krw or 0)
        self.hours += sign * (r.extend_hours or 0)


def costs(remedies: Iterable[RemedyAction], by: str) -> dict[str, Cost]:
    """Cost per action or per rule; the "total" row nets reversals out."""
    out: dict[str, Cost] = {}
    total = Cost()
    for r in remedies:
        out.setdefault(r.action.value if by == "action" else r.rule_id, Cost()).add(r)
        total.add(r, -1 if r.action is Action.REVERSAL else 1)
    out["total"] = total
    return out


def cost_table(current: dict[str, Cost], other: dict[str, Cost], title: str,
               names: tuple[str, str]) -> list[str]:
    rows = sorted(set(current) | set(other), key=lambda k: (k == "total", k))
    head = (f"{title:<32} {names[0][:30]:>30} {names[1][:30]:>30} {'difference':>30}")
    sub = f"{'':<32}" + f" {'count':>6} {'won':>14} {'hours':>8}" * 3
    lines = [head, sub]
    for k in rows:
        a, b = current.get(k, Cost()), other.get(k, Cost())
        cells = [(a.count, a.won, a.hours), (b.count, b.won, b.hours),
                 (b.count - a.count, b.won - a.won, b.hours - a.hours)]
        lines.append(f"{k[:32]:<32}" + "".join(f" {c:>6,} {w:>14,} {h:>8,}" for c, w, h in cells))
    return lines


def action_totals(remedies: Sequence[RemedyAction]) -> list[str]:
    table = costs(remedies, "action")
    return [f"  {k:<10} count {c.count:>8,}   won {c.won:>14,}   hours {c.hours:>10,}"
            for k, c in sorted(table.items(), key=lambda kv: (kv[0] == "total", kv[0]))]


# ----------------------------------------------------------------------------- replay

def replay(args: argparse.Namespace, settings: Settings) -> int:
    topic = args.topic
    if topic not in INPUT_TOPICS:
        raise ReplayError(f"cannot replay {topic!r}; replay reads one of: {', '.join(INPUT_TOPICS)}")
    if args.policy and not args.dry_run:
        raise ReplayError("--policy is a what-if estimate and publishes nothing: use it with --dry-run")
    if (args.from_time is None) == (not args.offsets):
        raise ReplayError("give exactly one of --from TIME or --offsets P:A-B")
    if args.to_time is not None and args.from_time is None:
        raise ReplayError("--to needs --from")
    offsets = parse_offsets(args.offsets or [])
    from_ms, to_ms = parse_time(args.from_time, "--from"), parse_time(args.to_time, "--to")
    if from_ms is not None and to_ms is not None and to_ms <= from_ms:
        raise ReplayError("--to must be after --from")
    policy = load_policy(str(settings.policy_path))
    other = load_policy(args.policy) if args.policy else None

    job = Replay(settings, policy, progress=not args.quiet)
    try:
        spans = job.spans(topic, from_ms=from_ms, to_ms=to_ms, offsets=offsets,
                          max_records=args.max_records, note=_err)
        ranges = ", ".join(f"{s.partition}:{s.start}-{s.end - 1}" for s in spans if len(s)) or "nothing"
        _err(f"replay {settings.topic(topic)}: {sum(len(s) for s in spans):,} records ({ranges})")
        ev = job.load(topic, spans)
        for s in ev.skipped[:args.show]:
            _err(f"  skipped partition {s.partition} offset {s.offset}: {s.stage}: {s.reason}")
        if len(ev.skipped) > args.show:
            _err(f"  ... and {len(ev.skipped) - args.show} more skipped")
        notes = "".join(f", {n} {k}" for k, n in sorted(ev.notes.items()))
        _err(f"read {ev.read:,} records: {len(ev.skipped):,} undecodable or invalid{notes}")
        if other is not None:
            return _what_if(job, ev, policy, other)
        decisions, outcomes = job.decide(ev, policy)
        records, remedies = job.outputs(decisions)
        issued = job.issued([r[0] for r in records])
        fresh = [r for r in records if r[0] not in issued]
        fresh_remedies = [r for r in remedies if r.remedy_id not in issued]
        by_topic = Counter(t for _, t, _, _ in fresh)
        what = (f"{by_topic[ACTIONS]:,} remedies, {by_topic[REVIEWS]:,} reviews, "
                f"{by_topic[NOTICES]:,} notices")
        already = f"{len(issued):,} of {len(records):,} decided records already issued (in the ledger)"
        if args.dry_run:
            _dry_run(settings, fresh_remedies, args.show)
            _err(f"dry run, nothing published. Would publish {len(fresh):,} records: {what}")
            if fresh_remedies:
                _err("\n".join(action_totals(fresh_remedies)))
            _err(already)
            return 0
        if fresh and not args.yes:
            _confirm(len(fresh), what)
        published = job.publish(fresh, progress=not args.quiet) if fresh else 0
        print(f"published {published:,} records ({what}); {already}")
        if fresh_remedies:
            print("\n".join(action_totals(fresh_remedies)))
        return 0
    finally:
        job.close()


def _dry_run(settings: Settings, remedies: Sequence[RemedyAction], show: int) -> None:
    records = JsonRecords(open_codec(settings, outage_wait=CLI_OUTAGE_WAIT))
    for r in remedies[:show]:
        sys.stdout.write(json.dumps(records.to_json("remedy_action", to_dict(r)),
                                    sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if len(remedies) > show:
        _err(f"showing {show} of {len(remedies):,} remedies (--show N for more)")


def _what_if(job: Replay, ev, policy, other) -> int:
    from streams.replay.whatif import decide_incident, load_incident_reports, reviews_of
    whole = ev.topic == OUTAGES
    if whole:
        load_incident_reports(job, ev)
    runs = []
    for p in (policy, other):
        decisions = decide_incident(job, ev, p) if whole else job.decide(ev, p)[0]
        runs.append((job.outputs(decisions)[1], reviews_of(decisions)))
    (remedies, reviews), (other_remedies, other_reviews) = runs
    names = (f"current {policy.version}", f"what-if {other.version}")
    scope = (f"the incident(s) {', '.join(sorted(ev.incidents)) or '(none)'}: {len(ev.entitlements):,} entitlements "
             f"and {len(ev.reports):,} damage reports" if whole else f"{ev.read:,} records of {ev.topic}")
    print(f"what-if over {scope}; the ledger is ignored: every remedy earned is counted "
          "(net totals subtract reversals)")
    print("\n".join(cost_table(costs(remedies, "action"), costs(other_remedies, "action"), "by action", names)))
    print()
    print("\n".join(cost_table(costs(remedies, "rule"), costs(other_remedies, "rule"), "by rule", names)))
    from streams.report.money import extension_values
    prices = {e.entitlement_id: (e.price_krw, e.period_days) for e, _ in ev.entitlements}
    worth = [sum(x.won for x in extension_values(r, prices)) for r in (remedies, other_remedies)]
    print(f"\nextensions in won (price per hour x hours extended): {worth[0]:,} current, {worth[1]:,} what-if, "
          f"difference {worth[1] - worth[0]:,}")
    if whole:
        for name, rv in zip(names, (reviews, other_reviews)):
            claimed = sum(v.claimed_loss_krw or 0 for v in rv)
            print(f"{name}: {len(rv):,} review case(s) left to a reviewer, claiming {claimed:,} won (not priced above)")
    return 0


def _confirm(n: int, what: str) -> None:
    if not sys.stdin.isatty():
        raise ReplayError(f"refusing to publish {n:,} records ({what}) without confirmation: "
                          "no terminal to ask on; pass --yes")
    sys.stderr.write(f"publish {n:,} records ({what}) to the live output topics? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise ReplayError("not confirmed; nothing published")


# ----------------------------------------------------------------------------- ledger

def ledger_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ledger.rebuild import OUTPUT_TOPICS, rebuild_ledger
    res = rebuild_ledger(settings, dry_run=args.dry_run, progress=not args.quiet, note=_err)
    for topic in OUTPUT_TOPICS:
        n = res.records[topic]
        bad = f" ({res.undecodable[topic]} undecodable)" if res.undecodable[topic] else ""
        print(f"{topic}: {n:,} records{bad}")
    verb = "would add" if args.dry_run else "added"
    print(f"ledger {'dry run' if args.dry_run else 'rebuilt'}: {res.ids:,} ids on the topics, {verb} "
          f"{res.missing:,}; {res.users:,} users indexed; the ledger holds {res.ledger_size:,} ids")
    return 0


# ----------------------------------------------------------------------------- argparse

def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add replay and ledger to the makegood parser."""
    rp = command(
        sub, "replay", help="re-run a range of an input topic through the processors (never moves worker offsets)",
        examples=["makegood replay damage.reports.v1 --from 2022-10-15T15:19:00+09:00 --dry-run",
                  "makegood replay entitlement.states.v1 --offsets 0:100-199 3:0-50 --yes",
                  "makegood replay outage.windows.v1 --from 0 --dry-run --policy deploy/policies/whatif-5day.yaml"
                  "   # what-if: the whole incident, windows and damage reports"],
        description=f"Re-run a range of TOPIC ({', '.join(INPUT_TOPICS)}) through the worker's processors "
                    "against the current state read from the topics, and publish what the ledger lacks. "
                    "TIME is ISO-8601 with an offset (2022-10-15T15:19:00+09:00) or epoch millis; "
                    "--from/--to select by record timestamp, [from, to).")
    rp.add_argument("topic", metavar="TOPIC")
    rp.add_argument("--from", dest="from_time", metavar="TIME", help="first record timestamp (inclusive)")
    rp.add_argument("--to", dest="to_time", metavar="TIME", help="end of the range (exclusive)")
    rp.add_argument("--offsets", nargs="+", metavar="P:A-B", help="explicit offsets A..B (inclusive) per partition")
    rp.add_argument("--dry-run", action="store_true", help="publish nothing; print what would be issued")
    rp.add_argument("--policy", metavar="FILE", help="with --dry-run: cost of this policy vs the current one")
    rp.add_argument("--yes", action="store_true", help="publish without asking")
    rp.add_argument("--show", type=_count, default=20, metavar="N", help="remedies to print on a dry run (20)")
    rp.add_argument("--max-records", type=_count, default=DEFAULT_MAX_RECORDS, metavar="N",
                    help=f"refuse a range holding more records ({DEFAULT_MAX_RECORDS:,})")
    rp.add_argument("--quiet", action="store_true", help="no progress lines")
    rp.set_defaults(func=replay)

    lg = command(sub, "ledger", help="rebuild the Redis ledger from the output topics",
                 examples=["makegood ledger rebuild --dry-run   # count what is missing", "makegood ledger rebuild"],
                        description="Re-read remedy.actions/reviews/notices/deadletter from the beginning and "
                                    "restore the ledger's ids and per-user remedy index (idempotent).")
    lg.add_argument("action", choices=["rebuild"])
    lg.add_argument("--dry-run", action="store_true", help="count what is missing; write nothing")
    lg.add_argument("--quiet", action="store_true", help="no progress lines")
    lg.set_defaults(func=ledger_rebuild)
