"""Targets, and the printed table: absolute numbers, ratios to both baselines, PASS/MISS."""
from __future__ import annotations

from . import jvm_peer

FULL = 1_000_000
SWEEP_S_PER_1M = 25.0            # issue #15 (was 60 s)
INGEST_VS_LIMIT = 0.5
INGEST_VS_PEER = 2.0             # issue #15 (was 1.5x)
SCALE_RSS_GB = 1.0               # 10M states on one worker (issue #15)
SCALE_RESTART_S = 15.0           # SIGKILL -> ready again, store on disk
REPORT_P99_MS = 500.0
RSS_GB_PER_1M = 1.5


def _get(d: dict | None, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _num(v, unit: str = "", fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v) + unit


def ingest_rate(res: dict):
    """events/s of the ingest run; a run that timed out gives its rate so far."""
    return _get(res, "ingest", "events_per_s") or _get(res, "ingest", "events_per_s_so_far")


def targets(res: dict) -> list[dict]:
    """Each target with its measured value and verdict (MISS when the phase produced no number)."""
    n = res["events"]
    limit = _get(res, "limit", "events_per_s")
    peer = _get(res, "peer", "events_per_s")
    ingest = ingest_rate(res)
    # one worker: the faster of its two configurations, named in the target line
    one = [k for k in ("sweep1", "sweep1p") if _get(res, k, "seconds") is not None]
    best = min(one, key=lambda k: res[k]["seconds"]) if one else "sweep1"
    sweep_s = _get(res, best, "seconds")
    sweep_n = _get(res, best, "entitlements") or n
    procs = _get(res, best, "sweep_processes")
    sweep_limit = SWEEP_S_PER_1M * sweep_n / FULL
    p99 = _get(res, "reports", "steady", "p99_ms")
    rss = _get(res, "ingest", "memory_kb", "VmHWM")
    rss_gb = rss / 1024 / 1024 if rss else None
    scaled = "" if sweep_n == FULL else f" (scaled: {sweep_limit:,.1f} s for {sweep_n:,})"
    ks_ingest = _get(res, "kstreams", "events_per_s")
    ks_sweep = _get(res, "kstreams_sweep", "entitlements_per_s")
    mg_sweep = _get(res, best, "entitlements_per_s")
    out = [
        {"target": "measured: makegood / Kafka Streams, ingest and sweep (peer decisions agree)",
         "value": (f"{_ratio(ingest, ks_ingest)} ingest, {_ratio(mg_sweep, ks_sweep)} sweep"
                   if ks_ingest or ks_sweep else None),
         "ok": bool(ingest and ks_ingest and mg_sweep and ks_sweep
                    and _get(res, "kstreams", "agreement", "agree") and _get(res, "kstreams_sweep", "agreement", "agree"))},
        {"target": f"sweep of 1M entitlements < {SWEEP_S_PER_1M:.0f} s, one worker"
                   f"{f' ({procs} sweep processes)' if procs else ''}{scaled}", "value": sweep_s,
         "ok": sweep_s is not None and sweep_s < sweep_limit},
        {"target": "ingest >= 0.5x the Python limit", "value": ingest / limit if ingest and limit else None,
         "ok": bool(ingest and limit and ingest >= INGEST_VS_LIMIT * limit)},
        {"target": f"ingest >= {INGEST_VS_PEER}x the Quix peer", "value": ingest / peer if ingest and peer else None,
         "ok": bool(ingest and peer and ingest >= INGEST_VS_PEER * peer)},
        {"target": "reports p99 < 500 ms at 1,000/s", "value": p99,
         "ok": p99 is not None and p99 < REPORT_P99_MS and not _get(res, "reports", "steady", "timed_out")},
        {"target": f"peak RSS < 1.5 GB per worker for 1M states (N={n:,})", "value": rss_gb,
         "ok": rss_gb is not None and rss_gb < RSS_GB_PER_1M},
    ]
    sc = res.get("scale") or {}
    if sc:
        hwm = max((_get(sc, k, "VmHWM") or 0) for k in ("restore_memory_kb", "memory_kb")) or None
        gb = hwm / 1024 / 1024 if hwm else None
        out += [
            {"target": f"peak RSS < {SCALE_RSS_GB:.0f} GB, {sc.get('states', 0):,} states on one worker",
             "value": gb, "ok": gb is not None and gb < SCALE_RSS_GB},
            {"target": f"restart to ready after SIGKILL < {SCALE_RESTART_S:.0f} s, {sc.get('states', 0):,} states",
             "value": sc.get("restart_to_ready_s"),
             "ok": sc.get("restart_to_ready_s") is not None and sc["restart_to_ready_s"] < SCALE_RESTART_S},
        ]
    return out


def _store_rows(res: dict, rows: list) -> None:
    """The store's rows (issue #15): the selective sweep beside the full one, and the scale run."""
    full, narrow = _get(res, "sweep1", "seconds"), _get(res, "sweep1s", "seconds")
    if narrow is not None:
        rows.append((f"sweep, 1 worker, {_get(res, 'sweep1s', 'entitlements') or 0:,} states, window naming "
                     f"{', '.join(_get(res, 'sweep1s', 'services') or [])} only",
                     _num(narrow, " s", "{:,.1f}"), "", f"{narrow / full:.2f}x of full" if full else "", ""))
    sc = res.get("scale") or {}
    if not sc:
        return
    n = sc.get("states", 0)
    rows.append((f"scale: {n:,} states, restore from the topic (log)", _num(sc.get("restore_s"), " s", "{:,.1f}"),
                 _num(sc.get("restore_records") and sc.get("restore_s") and sc["restore_records"] / sc["restore_s"],
                      "/s"), "", ""))
    rows.append(("scale: start to ready, empty store", _num(sc.get("restore_to_ready_s"), " s", "{:,.1f}"), "", "", ""))
    rows.append(("scale: SIGKILL -> ready, store on disk", _num(sc.get("restart_to_ready_s"), " s", "{:,.1f}"),
                 f"{sc.get('restart_records_read')} records read", "", ""))
    rows.append((f"scale: sweep, window naming {', '.join(sc.get('swept_services') or [])}",
                 _num(sc.get("sweep_s"), " s", "{:,.1f}"), f"{sc.get('sweep_expected_outputs', 0):,} outputs", "", ""))
    for label, key in (("restore", "restore_memory_kb"), ("restart + sweep", "memory_kb")):
        rows.append((f"scale: peak RSS, {label}", _num(_get(sc, key, "VmHWM") and _get(sc, key, "VmHWM") / 1024,
                                                      " MB"), "", "", ""))
    rows.append(("scale: store on disk", _num(sc.get("store_mb"), " MB"), "", "", ""))


def _kstreams_rows(res: dict, rows: list, limit, peer) -> None:
    """The JVM peer (bench/jvm_peer.py): its ingest, its sweep, its memory."""
    k = res.get("kstreams") or {}
    if k:
        how = f"1 JVM, {k.get('threads', 1)} stream thread, {k.get('guarantee', '?')}, -Xmx{k.get('heap', '?')}"
        v = k.get("events_per_s")
        rows.append((f"baseline: Kafka Streams peer, ingest ({how})", _num(v, "/s"), _ratio(v, limit),
                     _ratio(v, peer), "1.00x" if v else "-"))
        warm = k.get("events_per_s_second_half")
        if warm:
            rows.append(("  second half of its run (JIT warmed)", _num(warm, "/s"), _ratio(warm, limit),
                         _ratio(warm, peer), _ratio(warm, v)))
        rss = _get(k, "memory_kb", "VmHWM")
        rows.append(("  peak RSS (VmHWM) of its JVM", _num(rss and rss / 1024, " MB"), "", "", ""))
    s = res.get("kstreams_sweep") or {}
    if s:
        rows.append((f"baseline: Kafka Streams peer, sweep, {s.get('entitlements', 0):,} states, "
                     "CLOSED -> last remedy committed", _num(s.get("seconds"), " s", "{:,.1f}"), "", "", ""))
        v = s.get("entitlements_per_s")
        rows.append(("  = entitlements decided", _num(v, "/s"), _ratio(v, limit), _ratio(v, peer),
                     "1.00x" if v else "-"))


def render(res: dict) -> str:
    n = res["events"]
    limit = _get(res, "limit", "events_per_s")
    peer = _get(res, "peer", "events_per_s")
    ks = _get(res, "kstreams", "events_per_s")
    ks_sweep = _get(res, "kstreams_sweep", "entitlements_per_s")
    rows = [("measure", "makegood", "vs Python limit", "vs Quix peer", "vs Kafka Streams")]

    def thr(label, v, versus_ks=None):
        rows.append((label, _num(v, "/s"), _ratio(v, limit), _ratio(v, peer), _ratio(v, versus_ks)))

    held = _get(res, "ingest", "states_held")
    thr(f"ingest, 1 worker ({n:,} states{f', timed out at {held:,}' if held else ''})", ingest_rate(res), ks)
    for k in ("sweep1", "sweep1p", "sweep2"):
        s = res.get(k) or {}
        if not s:
            continue
        procs = f" + {s['sweep_processes']} sweep processes" if s.get("sweep_processes") else ""
        label = (f"sweep, {s.get('workers', k[5])} worker(s){procs}, {s.get('entitlements', 0):,} states, "
                 "CLOSED -> last remedy")
        rows.append((label, _num(s.get("seconds"), " s", "{:,.1f}"), "", "", ""))
        thr("  = entitlements decided", s.get("entitlements_per_s"), ks_sweep)
    _store_rows(res, rows)
    st = _get(res, "reports", "steady") or {}
    late = st.get("undecided") or (st.get("published", 0) - st.get("received", 0))
    rows.append((f"reports at {st.get('rate', 0):,}/s: p50 / p99 / max"
                 + (f" ({late:,} not decided in time)" if late else ""),
                 " / ".join(_num(st.get(k), "", "{:,.0f}") for k in ("p50_ms", "p99_ms", "max_ms")) + " ms",
                 "", "", ""))
    for s in _get(res, "reports", "steps") or []:
        rows.append((f"  step {s['rate']:,}/s: p99", _num(s.get("p99_ms"), " ms", "{:,.0f}"),
                     "ok" if s.get("ok") else "over", "", ""))
    thr("reports: highest steady rate, p99 < 500 ms", _get(res, "reports", "max_steady_rate"))
    rss = _get(res, "ingest", "memory_kb", "VmHWM")
    ks_rss = _get(res, "kstreams", "memory_kb", "VmHWM")
    rows.append(("peak RSS (VmHWM), ingest worker", _num(rss and rss / 1024, " MB"),
                 _ratio(rss, _get(res, "limit", "peak_rss_kb")), _ratio(rss, _get(res, "peer", "peak_rss_kb")),
                 _ratio(rss, ks_rss)))
    rows.append(("baseline: Python limit (consume/decode/encode/produce)", _num(limit, "/s"), "1.00x",
                 _ratio(limit, peer), _ratio(limit, ks)))
    rows.append(("baseline: Quix Streams peer (same join, same decisions)", _num(peer, "/s"),
                 _ratio(peer, limit), "1.00x", _ratio(peer, ks)))
    _kstreams_rows(res, rows, limit, peer)
    thr("reference: a faust agent doing nothing (same states)", _get(res, "faust", "events_per_s"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.append("")
    for t in targets(res):
        v = t["value"]
        shown = "-" if v is None else (f"{v:,.2f}" if isinstance(v, float) else str(v))
        lines.append(f"{'PASS' if t['ok'] else 'MISS'}  {t['target']}  (measured {shown})")
    for k in ("kstreams", "kstreams_sweep"):
        if res.get(k):
            lines.append(f"Kafka Streams peer decisions ({k}): {jvm_peer.describe(_get(res, k, 'agreement'))}")
    m = res["machine"]
    lines.append("")
    lines.append(f"machine: {m['cpu_count']} cores, load average {m['loadavg_before']} before, "
                 f"{m['loadavg_after']} after; commit {res['commit'][:10]}; wall time {res['wall_s']:,.0f} s")
    return "\n".join(lines)
