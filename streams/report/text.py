"""The incident report as text: aligned tables a terminal (and an SRE at 3 a.m.) reads."""
from __future__ import annotations

import datetime as dt
from typing import Sequence

from streams.report.collect import IncidentReport


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


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


def render_text(report: IncidentReport) -> str:
    inc, t, tm = report.incident, report.totals, report.timing
    out = [f"Incident {inc.incident_id}", *_pairs([
        ("site", inc.site), ("status", f"{inc.status} (revision {inc.revision}, {inc.revisions} seen)"),
        ("started", when(inc.started_at)), ("ended", when(inc.ended_at)),
        ("duration", "-" if inc.duration_hours is None else f"{inc.duration_hours:,.1f} h"),
        ("services", ", ".join(inc.services))], right=False), ""]
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
        ("won reversed", num(t.won_reversed)), ("hours extended", num(t.hours_extended)),
        ("hours granted", num(t.hours_granted)), ("hours reversed", num(t.hours_reversed)),
        ("users reached", num(t.users_reached)), ("entitlements covered", num(t.entitlements_covered))]), ""]
    out += ["Reports", *_pairs([("cases paid", num(t.report_cases_paid)),
                                ("decided by review", "{} cases paid, {} won".format(*map(num, report.decided_payouts)))]),
            "  reviews by reason", *_pairs([(k, num(v)) for k, v in report.reviews_by_reason], "    "),
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
    out += ["", "Timing", *_pairs([
        ("window closed (record time)", when(tm.closed_at)), ("last remedy (record time)", when(tm.last_remedy_at)),
        ("close to last remedy", seconds(tm.close_to_last_remedy_s)),
        ("remedies per second", num(tm.remedies_per_second, 1) if tm.remedies_per_second is not None else "-")],
        right=False), ""]
    out.append("Recorded outcomes (ledger)")
    for topic, counts in report.outcomes:
        body = ", ".join(f"{k} {num(v)}" for k, v in counts) or "(none recorded)"
        out.append(f"  {topic.ljust(max(len(x) for x, _ in report.outcomes))}  {body}")
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"
