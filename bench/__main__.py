"""`python -m bench` (`make bench`): every phase on the local stack, one table, one JSON file.

Phases, each in its own namespace: the Python limit, the Quix peer and the Kafka Streams peer
(bench/jvm_peer.py: ingest in `kstreams`, sweep in `kstreams_sweep`) as baselines, a faust
agent doing nothing (a reference: why entitlement states do not go through faust), makegood
ingest with one worker (and its peak RSS), the sweep with one worker (deciding in itself, then
in two helper processes: MAKEGOOD_SWEEP_PROCESSES) and with two workers, the sweep of a window
naming one service (sweep1s: the store reads only that service's states), the entitlement store
at scale (scale, with --scale-states N: restore from the topic, restart after SIGKILL, sweep;
bench/scale.py), and report latency at a steady rate and at rising rates. A phase that fails or times out is recorded with
what it got and the run goes on; Ctrl-C or SIGTERM stops every child process and still prints
and saves what was measured.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from processors.policy import load_policy
from streams.wire.framing import open_codec
from streams.settings import ROOT, Settings

from . import data, jvm_peer, scale, scenarios, table
from .harness import PhaseTimeout, say, terminate_all
from .reports import reports

PHASES = ("limit", "peer", "kstreams", "faust", "ingest", "reports", "sweep1", "sweep1p", "sweep2", "kstreams_sweep",
          "sweep1s", "scale")
SWEEP_PROCESSES = 2     # helper processes of the one-worker sweep in phase sweep1p (this machine: 2 cores)
RESULTS = ROOT / "bench" / "results"


def _args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="entitlement states per phase (default 1M)")
    ap.add_argument("--sweep-events", type=int, default=0,
                    help="entitlements stored before each sweep (default: --events)")
    ap.add_argument("--scale-states", type=int, default=0,
                    help="phase scale: this many states on one worker (restore, restart after SIGKILL, "
                         "sweep; e.g. 10000000); 0 = skip it")
    ap.add_argument("--report-seconds", type=float, default=60, help="length of the steady 1,000/s report run")
    ap.add_argument("--report-rate", type=int, default=1000, help="steady report rate (default 1,000/s)")
    ap.add_argument("--steps", default="1000,2000,4000,8000", help="rising report rates, comma-separated")
    ap.add_argument("--step-seconds", type=float, default=20, help="length of each rising-rate step")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds any one wait may take (default: 120 + 1.2 ms per event)")
    ap.add_argument("--only", default=",".join(PHASES), help=f"phases to run, from {','.join(PHASES)}")
    ap.add_argument("--no-profile", action="store_true", help="do not sample the workers with py-spy")
    ap.add_argument("--no-save", action="store_true", help="print only; write no results JSON")
    ap.add_argument("--name", default="", help="results file name suffix (two runs of one commit side by side)")
    return ap.parse_args(argv)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _unguarded(settings: Settings, rundir: Path):
    """The policy without its approval limits, for the workers the bench starts: a 1M-state sweep
    would otherwise be held for an operator (README, guarded issuance); the phases measure
    deciding and publishing. The workers inherit MAKEGOOD_POLICY from this process."""
    import yaml
    doc = yaml.safe_load(settings.policy_path.read_text())
    doc.pop("approval", None)
    path = rundir / "policy-unguarded.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    os.environ["MAKEGOOD_POLICY"] = str(path)
    return load_policy(str(path))


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    t_start = time.monotonic()
    commit = _commit()
    tag = f"{dt.date.today().isoformat()}-{commit[:7]}"
    settings = Settings.from_env()
    rundir = settings.state_dir / "bench" / f"{tag}-{time.strftime('%H%M%S')}"
    rundir.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    res: dict = {"commit": commit, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "events": a.events, "args": vars(a),
                 "machine": {"cpu_count": os.cpu_count(), "loadavg_before": _load(), "python": sys.version.split()[0]}}
    only = [p.strip() for p in a.only.split(",") if p.strip()]
    timeout = a.timeout or 120 + 0.0012 * a.events
    interrupted = False
    try:
        codec = open_codec(settings)   # the workers' framing: registry ids (#14)
        policy = _unguarded(settings, rundir)
        t = time.monotonic()
        ents = data.entitlements(codec, a.events)
        data.check_sample(codec, ents, policy)
        say(f"generated {len(ents):,} entitlement states in {time.monotonic() - t:.1f} s; logs in {rundir}")
        ctx = scenarios.Context(codec, policy, ents, rundir, RESULTS, tag, timeout, not a.no_profile,
                               sweep_n=a.sweep_events)
        if {"kstreams", "kstreams_sweep"} & set(only):
            try:       # before any phase, so no phase's time includes a Maven build
                jvm_peer.build()
            except Exception as exc:  # noqa: BLE001 - the other phases still run; the JVM ones will fail
                say(f"  the JVM peer did not build: {exc}")
        steps = [int(x) for x in a.steps.split(",") if x.strip()]
        runs = {
            "limit": lambda: scenarios.python_limit(ctx),
            "peer": lambda: scenarios.quix_peer(ctx),
            "kstreams": lambda: jvm_peer.ingest(ctx),
            "kstreams_sweep": lambda: jvm_peer.sweep(ctx),
            "faust": lambda: scenarios.faust_floor(ctx),
            "ingest": lambda: scenarios.ingest(ctx),
            "sweep1": lambda: scenarios.sweep(ctx, 1),
            "sweep1p": lambda: scenarios.sweep(ctx, 1, SWEEP_PROCESSES),
            "sweep2": lambda: scenarios.sweep(ctx, 2),
            "sweep1s": lambda: scale.selective_sweep(ctx),
            "scale": lambda: scale.scale(ctx, a.scale_states, res.setdefault("scale", {})),
            "reports": lambda: reports(ctx, a.report_rate, a.report_seconds, steps, a.step_seconds),
        }
        for phase in PHASES:
            if phase not in only or (phase == "scale" and not a.scale_states):
                continue
            say(f"== {phase}")
            t = time.monotonic()
            try:
                res[phase] = runs[phase]()
            except PhaseTimeout as exc:
                say(f"  timed out: {exc}")
                res[phase] = {"timed_out": str(exc), **exc.got}
            except Exception as exc:  # noqa: BLE001 - one broken phase must not lose the others
                say(f"  failed: {type(exc).__name__}: {exc}")
                res[phase] = {"error": f"{type(exc).__name__}: {exc}"}
            res[phase]["phase_wall_s"] = round(time.monotonic() - t, 1)
            say(f"  {phase}: {json.dumps({k: v for k, v in res[phase].items() if k != 'steps'}, default=str)}")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: stopping every child process")
    finally:
        terminate_all()
    res["machine"]["loadavg_after"] = _load()
    res["wall_s"] = round(time.monotonic() - t_start, 1)
    res["targets"] = table.targets(res)
    res["interrupted"] = interrupted
    print(table.render(res), flush=True)
    if not a.no_save:
        out = RESULTS / f"{tag}{'-' + a.name if a.name else ''}.json"
        out.write_text(json.dumps(res, indent=2, default=str) + "\n")
        say(f"results: {out}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
