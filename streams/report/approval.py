"""The report's approval section: what the policy's approval limits hold for the incident, and
who released what (processors.approval; read with ledger.holds, as `makegood incident pending`)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from processors.policy import load_policy

from streams.decide.admit import Admission
from streams.ledger.holds import read_holds
from streams.settings import Settings
from streams.wire.codec import Codec


@dataclass(frozen=True)
class HeldRevision:
    revision: int
    state: str                    # estimating | held | behind
    remedies: int | None
    won: int | None
    by: tuple[tuple[str, str, int, int], ...] = ()    # (service, action, remedies, won)


@dataclass(frozen=True)
class Approved:
    revision: int
    approved_by: str
    approved_at: int
    remedies: int
    won: int


@dataclass(frozen=True)
class ApprovalSection:
    above_remedies: int | None    # None: the policy sets no limits
    above_won: int | None
    held: tuple[HeldRevision, ...] = ()
    approved: tuple[Approved, ...] = ()


def approval_section(settings: Settings, codec: Codec, incident_id: str) -> ApprovalSection:
    state = read_holds(settings, Admission(codec, load_policy(str(settings.policy_path))))
    limits = state.limits
    held = tuple(HeldRevision(h.revision, h.state, h.cost.remedies if h.cost else None,
                              h.cost.won if h.cost else None, h.cost.by if h.cost else ())
                 for h in state.pending(incident_id) if incident_id in state.raw)
    approved = tuple(Approved(a.revision, a.approved_by, a.approved_at, a.remedies, a.amount_krw)
                     for a in state.records.get(incident_id, []))
    return ApprovalSection(limits.above_remedies if limits else None, limits.above_won if limits else None,
                           held, approved)


def render_approval(section: ApprovalSection | None, incident_id: str) -> list[str]:
    out = ["Approval (guarded issuance)"]
    if section is None:
        return out + ["  (unavailable)"]
    if section.above_remedies is None:
        return out + ["  the policy sets no approval limits"]
    out.append(f"  limits: {section.above_remedies:,} remedies or {section.above_won:,} won since the last approval")
    for a in section.approved:
        at = dt.datetime.fromtimestamp(a.approved_at / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.append(f"  revision {a.revision} approved by {a.approved_by} at {at}: {a.remedies:,} remedies, {a.won:,} won")
    for h in section.held:
        if h.state == "estimating":
            out.append(f"  revision {h.revision}: being counted (nothing issued until its cost is known)")
            continue
        what = "HELD, nothing issued" if h.state == "held" else "waits behind the held revision"
        out.append(f"  revision {h.revision}: {what}; would issue {h.remedies:,} remedies, {h.won:,} won")
        out += [f"    {s:<16} {a:<9} {n:>10,} remedies {w:>16,} won" for s, a, n, w in h.by]
    if section.held:
        last = section.held[-1].revision
        out.append(f"  release: makegood incident approve {incident_id} --revision {last} --by YOUR_ID")
    elif not section.approved:
        out.append("  nothing held: every revision is within the limits")
    return out
