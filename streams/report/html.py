"""The incident report as one self-contained HTML page: inline CSS and hand-drawn SVG charts.

No scripts, fonts or images from elsewhere, so the file can be mailed, attached to a ticket or
opened offline years later and look the same. Every string from a record goes through `esc`.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

from processors.model import Action

from streams.report.collect import IncidentReport
from streams.report.text import event_pairs, extension_rows, num, per_case_rows, pipeline_pairs, when, zone_of

ACTION_COLORS = {Action.EXTEND.value: "#3b6fb6", Action.CREDIT.value: "#f28e2b", Action.PAYOUT.value: "#3a9a5b",
                 Action.GRANT.value: "#9c6ade", Action.REVERSAL.value: "#e15759"}
PALETTE = ("#3b6fb6", "#f28e2b", "#3a9a5b", "#e15759", "#9c6ade", "#76b7b2", "#edc948", "#b07aa1")
STATUS_COLORS = {"CLOSED": "#3a9a5b", "OPEN": "#d98b00", "RETRACTED": "#7a7a7a"}
FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,'Noto Sans KR',Helvetica,Arial,sans-serif"
CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f4f8;color:#1f2430;font:14px/1.45 %s}
main{max-width:1120px;margin:0 auto;padding:28px 28px 48px}
header{background:#1f2430;color:#fff;border-radius:14px;padding:22px 26px;position:relative;overflow:hidden}
header:before{content:"";position:absolute;left:0;top:0;bottom:0;width:8px;background:#fee500}
header h1{margin:0 0 4px;font-size:24px;letter-spacing:.2px}
header .sub{color:#c9cedb}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:700;
 color:#fff;vertical-align:middle;margin-left:10px}
.chips{margin-top:12px}
.chip{display:inline-block;background:#343b4c;color:#e6e9f0;border-radius:6px;padding:1px 8px;margin:0 6px 6px 0;
 font-size:12px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(230px,100%%),1fr));gap:12px;margin:18px 0}
.kpi{background:#fff;border-radius:12px;padding:14px 16px;box-shadow:0 1px 3px rgba(20,30,60,.08)}
.kpi .v{font-size:22px;font-weight:700;font-variant-numeric:tabular-nums;white-space:nowrap}
.kpi .l{color:#68708a;font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.kpi .s{color:#8a91a6;font-size:12px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(440px,100%%),1fr));gap:16px;margin-bottom:16px}
.card{background:#fff;border-radius:12px;padding:16px 18px;box-shadow:0 1px 3px rgba(20,30,60,.08);
 margin-bottom:16px;min-width:0}
.grid .card{margin-bottom:0}
h2{font-size:15px;margin:0 0 10px;color:#1f2430}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#4a5166}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%%;font-variant-numeric:tabular-nums}
th,td{padding:5px 10px;border-bottom:1px solid #eceef3;text-align:left;white-space:nowrap}
th{font-size:12px;color:#68708a;font-weight:600;text-transform:uppercase;letter-spacing:.4px}
td.n,th.n{text-align:right}
tr.total td{font-weight:700;border-top:2px solid #d5d9e3;border-bottom:none}
td.err{white-space:pre-line;color:#4a5166;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.muted{color:#8a91a6}
.note{color:#8a5a00;background:#fff6d6;border-radius:8px;padding:8px 12px;margin-bottom:16px}
svg text{font-family:%s;font-size:12px;fill:#3a4152}
svg .val{fill:#1f2430;font-weight:600}
footer{color:#8a91a6;font-size:12px;text-align:center;margin-top:18px}
.scroll{overflow-x:auto;max-width:100%%}
h3{font-size:12px;color:#68708a;text-transform:uppercase;letter-spacing:.4px;margin:14px 0 4px}
.lead{color:#4a5166;font-size:13px;margin:-4px 0 10px}
@media (max-width:760px){main{padding:12px 10px 32px}header{padding:16px 16px 12px 22px}header h1{font-size:19px}
 .card{padding:12px 12px}th,td{padding:4px 6px}.kpi .v{font-size:19px}}
""" % (FONT, FONT)


def esc(value: object) -> str:
    return escape(str(value), quote=True)


# ------------------------------------------------------------------------------------ charts

def bar_chart(rows: Sequence[tuple[str, Sequence[tuple[str, int]]]], colors: dict[str, str], *,
              unit: str = "", width: int = 500) -> str:
    """Horizontal bars, one per row, each stacked from (segment, value) pairs (values >= 0)."""
    rows = [(label, [(k, v) for k, v in segs if v > 0]) for label, segs in rows]
    rows = sorted(((label, segs) for label, segs in rows if segs), key=lambda r: -sum(v for _, v in r[1]))
    if not rows:
        return '<p class="muted">nothing to show</p>'
    label_w = min(160, 16 + 8 * max(len(label) for label, _ in rows))
    value_w, bar_h, gap = 86, 20, 10
    plot_w = width - label_w - value_w
    top = max(sum(v for _, v in segs) for _, segs in rows)
    height = len(rows) * (bar_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" preserveAspectRatio="xMinYMin meet">']
    for i, (label, segs) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h / 2 + 4}" text-anchor="end">{esc(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{plot_w}" height="{bar_h}" rx="3" fill="#f1f3f7"/>')
        x = float(label_w)
        for key, value in segs:
            w = max(1.5, plot_w * value / top)
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors.get(key, "#999")}">'
                         f'<title>{esc(label)} {esc(key)}: {num(value)}{esc(unit)}</title></rect>')
            x += w
        total = sum(v for _, v in segs)
        parts.append(f'<text class="val" x="{x + 6:.1f}" y="{y + bar_h / 2 + 4}">{num(total)}{esc(unit)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def donut(items: Sequence[tuple[str, int]], colors: Sequence[str] = PALETTE, *, caption: str = "") -> str:
    """A ring of shares with the total in the middle and a legend beside it."""
    items = [(k, v) for k, v in items if v > 0]
    if not items:
        return '<p class="muted">nothing to show</p>'
    total = sum(v for _, v in items)
    r, stroke, cx, cy = 62, 26, 85, 85
    circ = 2 * math.pi * r
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 470 170" width="100%" style="max-width:520px" role="img">']
    offset = 0.0
    for i, (key, value) in enumerate(items):
        length = circ * value / total
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="{r}" fill="none" stroke="{colors[i % len(colors)]}" '
                     f'stroke-width="{stroke}" stroke-dasharray="{length:.2f} {circ - length:.2f}" '
                     f'stroke-dashoffset="{-offset:.2f}" transform="rotate(-90 {cx} {cy})">'
                     f'<title>{esc(key)}: {num(value)}</title></circle>')
        offset += length
    parts.append(f'<text x="{cx}" y="{cy + 2}" text-anchor="middle" class="val" style="font-size:22px">'
                 f'{num(total)}</text>')
    parts.append(f'<text x="{cx}" y="{cy + 20}" text-anchor="middle">{esc(caption)}</text>')
    for i, (key, value) in enumerate(items):
        y = 30 + i * 24
        parts.append(f'<rect x="190" y="{y - 10}" width="12" height="12" rx="2" fill="{colors[i % len(colors)]}"/>')
        parts.append(f'<text x="210" y="{y}">{esc(key)}</text>')
        parts.append(f'<text x="460" y="{y}" text-anchor="end" class="val">{num(value)} '
                     f'({100 * value / total:.0f}%)</text>')
    parts.append("</svg>")
    return "".join(parts)


def legend(keys: Sequence[str], colors: dict[str, str]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{colors[k]}"></i>{esc(k)}</span>'
                                            for k in keys) + "</div>"


# ------------------------------------------------------------------------------------ tables

def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool], *,
               total: Sequence[str] | None = None, wrap: int | None = None) -> str:
    def cells(row: Sequence[str], tag: str) -> str:
        out = []
        for i, (c, n) in enumerate(zip(row, numeric)):
            cls = "n" if n else ("err" if i == wrap else "")
            attr = f' class="{cls}"' if cls else ""
            out.append(f"<{tag}{attr}>{esc(c)}</{tag}>")
        return "".join(out)

    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    if total is not None:
        body += f'<tr class="total">{cells(total, "td")}</tr>'
    if not rows:
        body = f'<tr><td class="muted" colspan="{len(headers)}">none</td></tr>'
    head = f"<thead><tr>{cells(headers, 'th')}</tr></thead>" if any(headers) else ""
    return f"<table>{head}<tbody>{body}</tbody></table>"


def card(title: str, body: str) -> str:
    return f'<section class="card"><h2>{esc(title)}</h2>{body}</section>'


def kpi(label: str, value: str, sub: str = "") -> str:
    return (f'<div class="kpi"><div class="l">{esc(label)}</div><div class="v">{esc(value)}</div>'
            f'<div class="s">{esc(sub)}</div></div>')


def scroll(table: str) -> str:
    """A table that scrolls inside its card rather than widen the page on a narrow screen."""
    return f'<div class="scroll">{table}</div>'


def per_case_table(report: IncidentReport) -> str:
    """Per money action: cases, remedies, won and the average per case (not per remedy id)."""
    return scroll(html_table(["action", "cases", "remedies", "won", "per case"], per_case_rows(report),
                             [False, True, True, True, True]))


# ------------------------------------------------------------------------------------ the page

def render_html(report: IncidentReport, *, utc: bool = False) -> str:
    inc, t, tm, x = report.incident, report.totals, report.timing, report.exposure
    zone = zone_of(report, utc)
    actions = [a.value for a in Action if any(r.action == a.value for r in report.remedies)]
    services = sorted({r.service for r in report.remedies},
                      key=lambda s: -sum(r.count for r in report.remedies if r.service == s))

    def by_service(field: str, keep: set[str]) -> list[tuple[str, list[tuple[str, int]]]]:
        return [(s, [(r.action, getattr(r, field)) for r in report.remedies if r.service == s and r.action in keep])
                for s in services]

    chips = "".join(f'<span class="chip">{esc(s)}</span>' for s in inc.services)
    duration = "-" if inc.duration_hours is None else f"{inc.duration_hours:,.1f} h"
    header = (f'<header><h1>{esc(inc.incident_id)}<span class="badge" '
              f'style="background:{STATUS_COLORS.get(inc.status, "#7a7a7a")}">{esc(inc.status)}</span></h1>'
              f'<div class="sub">{esc(inc.site)} · {esc(when(inc.started_at, zone, seconds=False))} → '
              f'{esc(when(inc.ended_at, zone, seconds=False))} · {esc(duration)} · revision {inc.revision} '
              f'({inc.revisions} seen)</div><div class="chips">{chips}</div></header>')
    dup = f"{num(t.duplicate_records)} duplicate records ignored" if t.duplicate_records else "distinct remedy ids"
    ext_won = sum(e.won for e in report.extensions)
    payout = next((c for c in report.per_case if c.action == Action.PAYOUT.value), None)
    kpis = "".join([
        kpi("Remedies", num(t.remedies), f"{dup} · {num(t.users_reached)} users"),
        kpi("Won credited", f"₩{num(t.won_credited)}", "refund credits"),
        kpi("Won paid out", f"₩{num(t.won_paid_out)}",
            f"{num(payout.cases)} case(s) · ₩{num(payout.average)} per case" if payout else "no payouts"),
        kpi("Extensions in won", f"₩{num(ext_won)}", f"{num(t.hours_extended)} h extended"),
        kpi("Hours extended", num(t.hours_extended), f"{num(t.entitlements_covered)} entitlements"),
        kpi("Hours granted", num(t.hours_granted), "items given, usable for hours"),
        kpi("Awaiting review", f"₩{num(x.open_claimed_won)}", f"claimed in {num(x.open_cases)} open cases"),
        kpi("Decided by review", f"₩{num(x.decided_won)}", f"paid on {num(x.decided_cases)} cases")])

    won_rows = [("credited", [(Action.CREDIT.value, t.won_credited)]),
                ("paid out", [(Action.PAYOUT.value, t.won_paid_out)]),
                ("reversed", [(Action.REVERSAL.value, t.won_reversed)])]
    extend, grant = {Action.EXTEND.value}, {Action.GRANT.value}
    first = ('<div class="grid">'
             + card("Remedies by service", legend(actions, ACTION_COLORS)
                    + bar_chart(by_service("count", set(ACTION_COLORS)), ACTION_COLORS, width=500))
             + card("Won by action (KRW)", bar_chart(won_rows, ACTION_COLORS, width=500) + per_case_table(report))
             + "</div>")
    hours = ('<div class="grid">'
             + card("Hours extended by service", '<p class="lead">service time given back; its own scale</p>'
                    + bar_chart(by_service("hours", extend), ACTION_COLORS, unit=" h", width=500))
             + card("Hours granted by service", '<p class="lead">items usable for hours; its own scale</p>'
                    + bar_chart(by_service("hours", grant), ACTION_COLORS, unit=" h", width=500))
             + "</div>")
    ext_rows, ext_total = extension_rows(report)
    exposure = [["awaiting review", num(x.open_cases), num(x.open_claimed_won)],
                ["decided by review", num(x.decided_cases), num(x.decided_won)]]
    money = ('<div class="grid">'
             + card("Extensions in won", '<p class="lead">price per hour of the entitlement × hours extended; '
                    'free or unpriced entitlements are not valued</p>'
                    + scroll(html_table(["service", "hours", "priced hours", "won"], ext_rows,
                                        [False, True, True, True], total=ext_total if ext_rows else None)))
             + card("Review: open exposure and decisions",
                    scroll(html_table(["", "cases", "won (claimed / paid)"], exposure, [False, True, True]))
                    + (f'<p class="lead">{num(x.open_unstated)} open case(s) state no loss</p>' if x.open_unstated else "")
                    + donut(report.reviews_by_reason, caption="review cases"))
             + "</div>")
    stages = sorted({g.stage for g in report.dead_letters})
    topics = sorted({g.source_topic for g in report.dead_letters})
    topic_colors = {tp: PALETTE[i % len(PALETTE)] for i, tp in enumerate(topics)}
    dl_rows = [(st, [(g.source_topic, g.count) for g in report.dead_letters if g.stage == st]) for st in stages]
    timing = ('<h3>Event time: when it happened (records\' own fields)</h3>'
              + html_table(["", ""], event_pairs(report, zone), [False, True])
              + '<h3>Pipeline time: when this pipeline wrote the records</h3>'
              + html_table(["", ""], pipeline_pairs(report, zone), [False, True]))
    side = ('<div class="grid">'
            + card("Timing", timing)
            + card("Dead letters by stage", legend(topics, topic_colors) + bar_chart(dl_rows, topic_colors, width=500))
            + "</div>")
    rows = [[r.service, r.action, num(r.count), num(r.won), num(r.hours), num(r.top_ups), num(r.reversed)]
            for r in report.remedies]
    total = ["total", "", num(t.remedies), num(sum(r.won for r in report.remedies)),
             num(sum(r.hours for r in report.remedies)), num(t.top_ups), num(sum(r.reversed for r in report.remedies))]
    remedy_table = card("Remedies by service and action", scroll(html_table(
        ["service", "action", "count", "won", "hours", "top-ups", "reversed"], rows,
        [False, False, True, True, True, True, True], total=total if rows else None)))
    tables = ('<div class="grid">'
              + card("Notices by kind", html_table(["", ""], [[k, num(v)] for k, v in report.notices_by_kind], [False, True]))
              + card("Recorded outcomes (ledger)", html_table(
                  ["input topic", "outcomes"],
                  [[tp, ", ".join(f"{k} {num(v)}" for k, v in c) or "none recorded"] for tp, c in report.outcomes],
                  [False, False], wrap=1))
              + "</div>")
    dead = card("Dead letters", scroll(html_table(
        ["source topic", "stage", "count", "first errors"],
        [[g.source_topic, g.stage, num(g.count), "\n".join(g.errors)] for g in report.dead_letters],
        [False, False, True, False], wrap=3)))
    notes = "".join(f'<div class="note">{esc(n)}</div>' for n in report.notes)
    from streams.report.approval import render_approval
    lines = render_approval(report.approval, inc.incident_id)
    dead += card(lines[0], "<pre>" + esc("\n".join(line[2:] for line in lines[1:])) + "</pre>")
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><title>{esc(inc.incident_id)} — makegood report</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><main>{header}{notes}<div class="kpis">{kpis}</div>{first}{hours}{money}{side}'
            f'{remedy_table}{tables}{dead}<footer>makegood report · amounts in KRW · times in {esc(zone)}</footer>'
            "</main></body></html>\n")
