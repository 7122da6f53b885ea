"""The measured phases. Each runs in its own namespace, cleans up its processes and topics, and
returns a plain dict (what goes into the results JSON). Publishing is never timed."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import NewTopic

from processors.policy import Policy
from streams.wire.codec import Codec
from streams.kafka.topics import ENTITLEMENTS, OUTAGES, admin_client

from . import data
from .harness import Namespace, PhaseTimeout, Workers, memory_kb, publish, say, spawn, terminate, wait_for
from .profile import Profiler, shown


@dataclass
class Context:
    codec: Codec
    policy: Policy
    ents: data.Entitlements
    rundir: Path                  # scratch: logs, state dirs
    results: Path                 # where profiles are kept
    tag: str                      # <date>-<commit>, prefix of kept files
    timeout: float                # seconds per waiting step
    profile: bool
    sweep_n: int = 0              # entitlements for the sweep phases (0: all)

    @property
    def n(self) -> int:
        return len(self.ents)


def _windows(ctx: Context, ns: Namespace, *revisions) -> None:
    publish(ns.settings, OUTAGES, [w.incident_id.encode() for w in revisions],
            [ctx.codec.encode_obj("outage_window", w) for w in revisions])


def swept(ctx: Context, ns: Namespace, workers: Workers, closed, before: int, expected: int,
          what: str = "remedies ledgered", timeout: float | None = None) -> dict:
    """Publish the CLOSED revision and wait until the ledger holds `expected` ids: {"seconds":
    from the publish to the last output ledgered}, or {"timed_out": why, "ledgered": how many}."""
    t0 = time.monotonic()
    _windows(ctx, ns, closed)
    try:
        w = wait_for(what, ns.ledger.size, expected, timeout or ctx.timeout, workers.check)
        return {"seconds": w["done"] - t0}
    except PhaseTimeout as exc:
        return {"timed_out": str(exc), "ledgered": exc.got["value"] - before}


def _states(ctx: Context, ns: Namespace, ents: data.Entitlements | None = None) -> None:
    ents = ents or ctx.ents
    secs = publish(ns.settings, ENTITLEMENTS, ents.keys, ents.values)
    say(f"  published {len(ents):,} entitlement states in {secs:.1f} s (not timed)")


def _run_json(args: list[str], log: Path, timeout: float, what: str) -> dict:
    """Run a bench subprocess that prints one JSON line; kill it at the timeout."""
    p = spawn([sys.executable, *args], log)
    try:
        p.wait(timeout)
    except Exception:
        terminate([p], grace=5)
        raise PhaseTimeout(f"{what} did not finish within {timeout:.0f} s", {"log": str(log)})
    terminate([p])
    # the JSON line may follow terminal control bytes (faust's spinner) on the same line
    lines = [ln[ln.index('{"'):] for ln in log.read_text(errors="replace").splitlines() if '{"' in ln]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed ({p.returncode}): {log.read_text(errors='replace')[-1500:]}")
    return json.loads(lines[-1])


# ------------------------------------------------------------------------------ baselines

def _rate_of(ctx: Context, ns: Namespace, what: str, module: str, args: list[str], grace: float) -> dict:
    """Run a baseline's process on the namespace's N states; its JSON line plus events/s."""
    got = _run_json(["-m", module, "--namespace", ns.name, "--events", str(ctx.n), *args],
                    ns.dir / f"{module.rsplit('.', 1)[-1]}.log", ctx.timeout + grace, what)
    got["events_per_s"] = got["events"] / got["seconds"] if got.get("seconds") else None
    return got


def python_limit(ctx: Context) -> dict:
    ns = Namespace("limit", ctx.rundir)
    try:
        _states(ctx, ns)
        out = ns.settings.topic("bench.passthrough.v1")
        admin = admin_client(ns.settings)
        admin.create_topics([NewTopic(out, 8, 1)])[out].result(30)
        say("  consume -> decode -> encode -> produce, one process ...")
        return _rate_of(ctx, ns, "python limit", "bench.limit", ["--out", out, "--timeout", str(ctx.timeout)], 60)
    finally:
        ns.drop()


def quix_peer(ctx: Context) -> dict:
    ns = Namespace("quix", ctx.rundir)
    try:
        opened, closed = data.windows()
        _windows(ctx, ns, opened, closed)
        _states(ctx, ns)
        say("  Quix Streams application: stateful apply + decide_entitlement + to_topic ...")
        got = _rate_of(ctx, ns, "quix peer", "bench.peer",
                       ["--state-dir", str(ns.dir / "quix-state"), "--timeout", str(ctx.timeout)], 120)
        if got["events"] < ctx.n:
            got["timed_out"] = f"quix peer: {got['events']:,} of {ctx.n:,} in {ctx.timeout:.0f} s"
        return got
    finally:
        ns.drop()


def faust_floor(ctx: Context) -> dict:
    """Reference: a faust agent that does nothing, on the same states (bench/faust_floor.py)."""
    ns = Namespace("faust", ctx.rundir)
    try:
        _states(ctx, ns)
        say("  faust agent, take_events(1000), no work at all ...")
        return _rate_of(ctx, ns, "faust floor", "bench.faust_floor", ["--state-dir", str(ns.dir / "faust-state")], 60)
    finally:
        ns.drop()


# ------------------------------------------------------------------------------ makegood

def ingest(ctx: Context) -> dict:
    """Decode, store, decide against a CLOSED window, emit: N states already on the topic."""
    ns = Namespace("ingest", ctx.rundir)
    workers = None
    prof = None
    result: dict = {"events": ctx.n}
    try:
        opened, closed = data.windows()
        _windows(ctx, ns, opened, closed)
        _states(ctx, ns)
        result["expected_outputs"] = ctx.ents.outputs_earned(ctx.policy, (opened, closed))
        workers = Workers(ns, 1)
        pid = workers.pids[0]
        if ctx.profile:
            prof = Profiler(pid, ctx.results / f"{ctx.tag}-profile-ingest")
        try:
            w = wait_for("entitlements decided", lambda: ns.outcomes(ENTITLEMENTS), ctx.n, ctx.timeout,
                         workers.check)
        except PhaseTimeout as exc:
            result.update(timed_out=str(exc), outcomes=exc.got["value"], states_held=exc.got["value"])
            if exc.got.get("first"):
                result["events_per_s_so_far"] = exc.got["value"] / (time.monotonic() - exc.got["first"])
            return result
        finally:
            result["memory_kb"] = memory_kb(pid) if workers.procs[0].poll() is None else None
        result["seconds"] = w["done"] - w["first"]
        result["startup_s"] = w["first"] - w["start"]
        result["events_per_s"] = ctx.n / result["seconds"]
        result["ledger_at_done"] = ns.ledger.size()
        return result
    finally:
        if prof is not None:
            result["profile"] = _keep(prof.stop(f"makegood worker, ingest of {ctx.n:,} states"))
        if workers is not None:
            workers.stop()
        ns.drop()


def sweep(ctx: Context, n_workers: int, processes: int = 0) -> dict:
    """Window CLOSED -> last remedy ledgered, for N states stored while the window was OPEN;
    with `processes`, each worker decides its sweep in that many helper processes."""
    label = f"sweep{n_workers}" + (f"p{processes}" if processes else "")
    ns = Namespace(label, ctx.rundir)
    workers = None
    prof = None
    ents = ctx.ents.head(ctx.sweep_n or ctx.n)
    n = len(ents)
    result: dict = {"entitlements": n, "workers": n_workers, "sweep_processes": processes}
    try:
        workers = Workers(ns, n_workers, {"MAKEGOOD_SWEEP_PROCESSES": str(processes)})
        workers.wait_assigned(ns_partitions(ns))
        opened, closed = data.windows()
        _windows(ctx, ns, opened)
        _states(ctx, ns, ents)
        wait_for("states stored (window OPEN)", lambda: ns.outcomes(ENTITLEMENTS), n, ctx.timeout,
                 workers.check, interval=0.25)
        time.sleep(2.0)                           # let the OPEN revision's (empty) sweep finish
        before = ns.ledger.size()
        expected = before + ents.outputs_earned(ctx.policy, (opened, closed))
        result["expected_outputs"] = expected - before
        if ctx.profile and n_workers == 1:
            prof = Profiler(workers.pids[0], ctx.results / f"{ctx.tag}-profile-{label}")
        say(f"  window CLOSED: expecting {expected - before:,} remedies and notices")
        result.update(swept(ctx, ns, workers, closed, before, expected))
        if "seconds" in result:
            result["entitlements_per_s"] = n / result["seconds"]
        result["memory_kb"] = [memory_kb(p) for p in workers.pids]
        return result
    finally:
        if prof is not None:
            result["profile"] = _keep(prof.stop(f"makegood worker, sweep of {n:,} states, 1 worker"
                                                + (f" ({processes} sweep processes, not sampled)" if processes else "")))
        if workers is not None:
            workers.stop()
        ns.drop()


def ns_partitions(ns: Namespace) -> int:
    from streams.kafka.topics import load_topic_specs
    return load_topic_specs(ns.settings.topics_file)[ENTITLEMENTS].partitions


def _keep(path: Path | None) -> str | None:
    return shown(path) if path else None
