"""Window algebra: incident histories and the half-open interval tests of DESIGN §3.

Every interval is half-open, [start, end). All times are int epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from processors.model import EntitlementState, EntitlementStatus, OutageWindow

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# A refunded or redeemed entitlement was never "in use" during an outage.
_NEVER_ELIGIBLE = frozenset({EntitlementStatus.REFUNDED, EntitlementStatus.REDEEMED})


@dataclass(frozen=True, slots=True)
class IncidentHistory:
    """The accepted revisions of one incident, oldest first.

    A revision is accepted only if it is newer than every revision before it, so a
    late-arriving older revision never changes the history (DESIGN §2, OutageWindow).
    """

    revisions: tuple[OutageWindow, ...] = ()

    @property
    def latest(self) -> OutageWindow | None:
        return self.revisions[-1] if self.revisions else None

    @property
    def incident_id(self) -> str | None:
        return self.revisions[0].incident_id if self.revisions else None

    def accept(self, w: OutageWindow) -> IncidentHistory | None:
        """A new history with `w` appended, or None when `w` is not newer than the latest."""
        latest = self.latest
        if latest is not None:
            if w.incident_id != latest.incident_id:
                raise ValueError(
                    f"revision of {w.incident_id!r} offered to history of {latest.incident_id!r}"
                )
            if w.revision <= latest.revision:
                return None
        return IncidentHistory(self.revisions + (w,))

    @classmethod
    def of(cls, windows: tuple[OutageWindow, ...] | list[OutageWindow]) -> IncidentHistory:
        """Fold windows in the given order through `accept` (stale ones are skipped)."""
        history = cls()
        for w in windows:
            history = history.accept(w) or history
        return history


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """Whether half-open [a_start, a_end) and [b_start, b_end) share an instant."""
    return max(a_start, b_start) < min(a_end, b_end)


def contains(start: int, end: int | None, t: int) -> bool:
    """Whether t lies in [start, end); end None means the interval is still open."""
    return start <= t and (end is None or t < end)


def usable(ent: EntitlementState) -> bool:
    return ent.status not in _NEVER_ELIGIBLE


def active_during(ent: EntitlementState, started_at: int, ended_at: int) -> bool:
    """[valid_from, valid_until) overlaps [started_at, ended_at), status not REFUNDED/REDEEMED."""
    return usable(ent) and overlaps(ent.valid_from, ent.valid_until, started_at, ended_at)


def active_at(ent: EntitlementState, t: int) -> bool:
    """valid_from <= t < valid_until, status not REFUNDED/REDEEMED."""
    return usable(ent) and ent.valid_from <= t < ent.valid_until


def expired_during(ent: EntitlementState, started_at: int, ended_at: int) -> bool:
    """started_at <= valid_until < ended_at, status not REFUNDED/REDEEMED."""
    return usable(ent) and started_at <= ent.valid_until < ended_at


def duration_ms(w: OutageWindow) -> int:
    """Length of a closed window; an open window has no duration yet."""
    if w.ended_at is None:
        raise ValueError(f"{w.incident_id} revision {w.revision} has no end yet")
    return w.ended_at - w.started_at


def round_up(ms: int, unit_ms: int) -> int:
    """ms rounded up to a whole multiple of unit_ms (0 stays 0)."""
    if unit_ms <= 0:
        raise ValueError("unit_ms must be positive")
    return -(-ms // unit_ms) * unit_ms


def outage_hours(w: OutageWindow, unit_ms: int) -> int:
    """The window's duration rounded up to unit_ms, in whole hours (unit_ms is whole hours)."""
    return round_up(duration_ms(w), unit_ms) // HOUR_MS
