"""One entitlement against every incident: on arrival, in a sweep, in a replay.

Deciding is pure (processors.entitlements.decide_entitlement per incident history); this is
the one loop around it, so the worker's arrival path, its sweep (in the worker or in a helper
process) and the replay cannot drift apart.
"""
from __future__ import annotations

from typing import Iterable

from processors.entitlements import decide_entitlement
from processors.model import Decision, EntitlementState, Source
from processors.policy import Policy
from processors.windows import IncidentHistory

from streams.decide.outputs import Batch


def decide_all(policy: Policy, histories: Iterable[IncidentHistory], ent: EntitlementState,
               source: Source) -> Iterable[Decision]:
    """Every decision about `ent`, one per incident (no-ops included, for counting)."""
    for history in histories:
        yield decide_entitlement(policy, history, ent, source)


def owed(policy: Policy, histories: Iterable[IncidentHistory], ent: EntitlementState,
         source: Source, batch: Batch) -> int:
    """Add to `batch` the decisions about `ent` that publish something; returns how many
    incidents it was decided against."""
    n = 0
    for d in decide_all(policy, histories, ent, source):
        n += 1
        if d.remedies or d.notices:
            batch.decisions.append(d)
    return n
