"""The incident report as text: aligned tables a terminal (and an SRE at 3 a.m.) reads.

Times are shown in the incident's time zone (the policy's `timezone`, KST for the reference
incident) unless the caller asks for UTC. Two clocks are kept apart and named: event time (when
it happened: the outage, the remedies' decided_at, from the records' own fields) and pipeline
time (when this pipeline wrote the records: broker timestamps, today for a replayed incident).
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Sequence

from streams.report.approval import render_approval
from streams.report.collect import IncidentReport


def zone_of(report: IncidentReport, utc: bool = False) -> str:
    return "UTC" if utc else report.timezone


def when(ms: int | None, zone: str = "UTC", *, seconds: bool = True) -> str:
    if ms is None:
        return "-"
    tz = dt.timezone.utc if zone == "UTC" else zoneinfo.ZoneInfo(zone)
    t = dt.datetime.fromtimestamp(ms / 1000, tz)
    return t.strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " ") + (t.tzname() or zone)


def num(n: int | float | None, digits: int = 0) -> str:
    if n is None:
        return "-"
    return f"{n:,.{digits}f}" if digits or isinstance(n, float) else f"{n:,}"


def seconds(s: float | None) -> str:
    if s is None:
        return "-"
    if abs(s) < 120:
        return f"{s:,.1f} s"
    return f"{s:,.0f} s ({s / 60:,.1f} min)"


def hours_days(h: float | None) -> str:
    if h is None:
        return "-"
    return f"{h:,.1f} h ({h / 24:,.1f} days)"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """Aligned columns; numeric ones right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _pairs(items: Sequence[tuple[str, str]], indent: str = "  ", *, right: bool = True) -> list[str]:
    """`label  value` lines; values right-aligned when they are numbers."""
    if not items:
        return [f"{indent}(none)"]
    kw = max(len(k) for k, _ in items)
    vw = max(len(v) for _, v in items)
    return [f"{indent}{k.ljust(kw)}  {v.rjust(vw) if right else v}".rstrip() for k, v in items]


def per_case_rows(report: IncidentReport) -> list[list[str]]:
    return [[c.action, num(c.cases), num(c.remedies), num(c.won), num(c.average)] for c in report.per_case]


def extension_rows(report: IncidentReport) -> tuple[list[list[str]], list[str]]:
    rows = [[e.service, num(e.hours), num(e.priced_hours), num(e.won)] for e in report.extensions]
    total = ["total", num(sum(e.hours for e in report.extensions)),
             num(sum(e.priced_hours for e in report.extensions)), num(sum(e.won for e in report.extensions))]
    return rows, total


def event_pairs(report: IncidentReport, zone: str) -> list[tuple[str, str]]:
    ev = report.events
    return [("outage started", when(ev.outage_started, zone, seconds=False)),
            ("outage ended", when(ev.outage_ended, zone, seconds=False)),
            ("first remedy decided", when(ev.first_decided, zone, seconds=False)),
            ("last remedy decided", when(ev.last_decided, zone, seconds=False)),
            ("last remedy after the outage ended", hours_days(ev.last_after_end_h))]


def pipeline_pairs(report: IncidentReport, zone: str) -> list[tuple[str, str]]:
    tm = report.timing
    return [("closing window written", when(tm.closed_at, zone)), ("last remedy written", when(tm.last_remedy_at, zone)),
            ("close to last remedy", seconds(tm.close_to_last_remedy_s)),
            ("remedies per second", num(tm.remedies_per_second, 1) if tm.remedies_per_second is not None else "-")]


def render_text(report: IncidentReport, *, utc: bool = False) -> str:
    inc, t, x = report.incident, report.totals, report.exposure
    zone = zone_of(report, utc)
    out = [f"Incident {inc.incident_id}", *_pairs([
        ("site", inc.site), ("status", f"{inc.status} (revision {inc.revision}, {inc.revisions} seen)"),
        ("started", when(inc.started_at, zone, seconds=False)), ("ended", when(inc.ended_at, zone, seconds=False)),
        ("duration", "-" if inc.duration_hours is None else f"{inc.duration_hours:,.1f} h"),
        ("services", ", ".join(inc.services)),
        ("times in", f"{zone}" + ("" if utc else " (--utc for UTC)"))], right=False), ""]
    out.append("Remedies by service and action")
    rows = [[r.service, r.action, num(r.count), num(r.won), num(r.hours), num(r.top_ups), num(r.reversed)]
            for r in report.remedies]
    rows.append(["total", "", num(t.remedies), num(sum(r.won for r in report.remedies)),
                 num(sum(r.hours for r in report.remedies)), num(t.top_ups),
                 num(sum(r.reversed for r in report.remedies))])
    out += ["  " + line for line in table(["service", "action", "count", "won", "hours", "top-ups", "reversed"],
                                          rows, [False, False, True, True, True, True, True])]
    if t.duplicate_records:
        out.append(f"  ({num(t.duplicate_records)} duplicate record(s) of ids already counted were ignored)")
    out += ["", "Money and time", *_pairs([
        ("won credited", num(t.won_credited)), ("won paid out", num(t.won_paid_out)),
        ("won reversed", num(t.won_reversed)), ("won value of extensions", num(sum(e.won for e in report.extensions))),
        ("hours extended", num(t.hours_extended)),
        ("hours granted", num(t.hours_granted)), ("hours reversed", num(t.hours_reversed)),
        ("users reached", num(t.users_reached)), ("entitlements covered", num(t.entitlements_covered))]), ""]
    out.append("Money per case (a payout and its top-ups are one case)")
    out += ["  " + line for line in table(["action", "cases", "remedies", "won", "average per case"],
                                          per_case_rows(report), [False, True, True, True, True])]
    ext, ext_total = extension_rows(report)
    out += ["", "Extensions in won (price per hour of the entitlement x hours extended)"]
    out += ["  " + line for line in table(["service", "hours", "priced hours", "won"], ext + [ext_total],
                                          [False, True, True, True])]
    out.append("  (hours of free entitlements or of ones with no known price are not valued)")
    out += ["", "Reviews", *_pairs([
        ("awaiting review (open exposure)", f"{num(x.open_cases)} cases, claiming {num(x.open_claimed_won)} won"
                                            + (f" ({num(x.open_unstated)} with no stated loss)" if x.open_unstated else "")),
        ("decided by review", f"{num(x.decided_cases)} cases, {num(x.decided_won)} won paid"),
        ("report cases paid", num(t.report_cases_paid))], right=False),
        "  review cases by reason", *_pairs([(k, num(v)) for k, v in report.reviews_by_reason], "    "),
        "  notices by kind", *_pairs([(k, num(v)) for k, v in report.notices_by_kind], "    "), ""]
    out.append("Dead letters")
    if report.dead_letters:
        rows = []
        for g in report.dead_letters:
            rows.append([g.source_topic, g.stage, num(g.count), g.errors[0] if g.errors else ""])
            rows += [["", "", "", e] for e in g.errors[1:]]
        out += ["  " + line for line in table(["source topic", "stage", "count", "first errors"], rows,
                                              [False, False, True, False])]
    else:
        out.append("  (none)")
    out += ["", "Timing, event time (when it happened, from the records' own fields)",
            *_pairs(event_pairs(report, zone), right=False), "",
            "Timing, pipeline time (when this pipeline wrote the records: broker timestamps)",
            *_pairs(pipeline_pairs(report, zone), right=False), ""]
    out += [*render_approval(report.approval, inc.incident_id), ""]
    out.append("Recorded outcomes (ledger)")
    for topic, counts in report.outcomes:
        body = ", ".join(f"{k} {num(v)}" for k, v in counts) or "(none recorded)"
        out.append(f"  {topic.ljust(max(len(x) for x, _ in report.outcomes))}  {body}")
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"
