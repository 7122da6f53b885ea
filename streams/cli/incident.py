"""`makegood incident pending` and `makegood incident approve`: the operator's side of guarded
issuance (processors.approval).

pending lists every revision the policy's approval limits hold, with what it would issue (remedies
and won, by service and action) and the command that releases it. approve writes one record to
makegood.approvals.v1 (keyed by incident, read by every worker with the outage windows): it
releases every revision up to the one approved, once. It refuses an unknown incident or revision,
a revision that is not held, one still being counted, and one already approved.
"""
from __future__ import annotations

import argparse
import json
import time
from typing import Any

from processors.approval import Hold
from processors.policy import load_policy

from streams.cli.help import command
from streams.decide.admit import Admission
from streams.ledger.holds import HoldState, read_holds, write_approval
from streams.settings import Settings
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec


def _state(settings: Settings) -> tuple[Admission, HoldState]:
    admission = Admission(open_codec(settings, outage_wait=CLI_OUTAGE_WAIT), load_policy(str(settings.policy_path)))
    return admission, read_holds(settings, admission)


def hold_json(h: Hold) -> dict:
    return {"incident_id": h.incident_id, "revision": h.revision, "state": h.state, "behind": h.behind,
            "cost": h.cost.to_plain() if h.cost is not None else None, "since_approved": h.since.to_plain()}


def hold_lines(h: Hold, limits: Any) -> list[str]:
    """A held revision for people: state, cost, the rows by service and action, what to run."""
    head = f"{h.incident_id} revision {h.revision}: "
    if h.state == "estimating":
        return [head + "being counted by the workers (nothing is issued until its cost is known)"]
    assert h.cost is not None
    cost = f"{h.cost.remedies:,} remedies, {h.cost.won:,} won"
    if h.state == "behind":
        lines = [head + f"waits behind revision {h.behind}; would issue {cost} in all"]
    else:
        lines = [head + f"HELD: would issue {cost} in all; the limits are {limits.above_remedies:,} remedies "
                 f"and {limits.above_won:,} won since the last approval ({h.since.remedies:,} / {h.since.won:,})"]
    lines += [f"    {service:<16} {action:<9} {n:>10,} remedies {won:>16,} won" for service, action, n, won in h.cost.by]
    lines.append(f"    release it: makegood incident approve {h.incident_id} --revision {h.revision} --by YOUR_ID")
    return lines


def pending(args: argparse.Namespace, settings: Settings) -> int:
    _, state = _state(settings)
    held = state.pending(args.incident)
    if args.json:
        print(json.dumps([hold_json(h) for h in held], indent=2))
        return 0
    if state.limits is None:
        print("the policy sets no approval limits: nothing is ever held")
        return 0
    if not held:
        print("nothing is held" + (f" for {args.incident}" if args.incident else ""))
        return 0
    for h in held:
        print("\n".join(hold_lines(h, state.limits)))
    return 0


def approve(args: argparse.Namespace, settings: Settings) -> int:
    admission, state = _state(settings)
    hold, record = write_approval(settings, admission, state, args.incident, args.revision, args.by,
                                  int(time.time() * 1000))
    assert hold.cost is not None
    first = state.released(args.incident)
    first_rev = state.raw[args.incident].revisions[first].revision
    span = f"revision {args.revision}" if first_rev == args.revision else f"revisions {first_rev}-{args.revision}"
    print(f"approved {args.incident} {span} by {args.by}: the workers now issue {hold.cost.remedies:,} remedies, "
          f"{hold.cost.won:,} won (each once; see `makegood report {args.incident}`)")
    return 0


def register(sub: Any) -> None:
    """Add `incident pending` and `incident approve` to the `makegood` subparsers."""
    p = command(sub, "incident", help="what the approval limits hold, and releasing it", description=__doc__,
                examples=["makegood incident pending",
                          "makegood incident approve INC-20221015-PANGYO --revision 3 --by sre-0042"])
    inner = p.add_subparsers(dest="incident_command", required=True, metavar="pending|approve")
    pend = command(inner, "pending", help="revisions held by the approval limits, with their cost",
                   examples=["makegood incident pending", "makegood incident pending INC-20221015-PANGYO --json"])
    pend.add_argument("incident", nargs="?", metavar="INCIDENT_ID", help="only this incident")
    pend.add_argument("--json", action="store_true", help="print JSON instead of text")
    pend.set_defaults(func=pending)
    appr = command(inner, "approve", help="release a held revision (and the ones before it), once",
                   examples=["makegood incident approve INC-20221015-PANGYO --revision 3 --by sre-0042"])
    appr.add_argument("incident", metavar="INCIDENT_ID")
    appr.add_argument("--revision", type=int, required=True, metavar="N", help="the revision to release")
    appr.add_argument("--by", required=True, metavar="ID", help="the approving operator's id (no names or e-mail)")
    appr.set_defaults(func=approve)
