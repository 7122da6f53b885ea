"""The JVM peer: makegood's entitlement x window join as a Kafka Streams application.

bench/kstreams/ is what a Java team would write (Java 17; Kafka Streams 3.9.1, the version of the
broker jars in deploy/kafka/pom.xml; Apache Avro; Maven Central only): a RocksDB state store of
entitlement states per task, the incidents read by every instance, each new state decided against
them and each new revision swept over the store; remedies and their notices go to the peer's own
topics (`<ns>.bench.kstreams.remedies.v1`, `.notices.v1`) in the workers' Avro and registry
framing, so the inputs are the very bytes the workers read.

The constraints the Python worker has, given to the JVM where they mean something: one instance,
one stream thread (`--threads 1`), the same 8 entitlement partitions, exactly-once
(`exactly_once_v2`: the workers publish in Kafka transactions), and a heap capped at HEAP. The JVM
still runs its GC and JIT threads on both cores; that is how Java runs.

A peer that decides wrongly is worthless, so every phase checks what it published: all remedies
(count, hours and won, against what the bench's profiles earn under the reference), and per remedy
id against processors.batch.evaluate for a sample of the entitlements (every k-th, at most
SAMPLE of them; the test tests/integration/bench/test_jvm_peer.py checks every id on a small input).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import NewTopic

from processors.batch import evaluate
from processors.entitlements import decide_entitlement
from processors.model import OutageWindow, Source
from processors.policy import Policy
from processors.windows import IncidentHistory
from streams.kafka.topics import ENTITLEMENTS, admin_client, load_topic_specs
from streams.settings import ROOT, Settings
from streams.wire.codec import Codec

from . import data
from .harness import Namespace, PhaseTimeout, memory_kb, say, spawn, terminate
from .scenarios import _states, _windows

PROJECT = ROOT / "bench" / "kstreams"
MAIN = "dev.makegood.kstreams.PeerApp"
HEAP = "1g"                          # -Xmx of the peer's JVM
REMEDIES = "bench.kstreams.remedies.v1"
NOTICES = "bench.kstreams.notices.v1"
SAMPLE = 100_000                     # entitlements checked id by id against the batch evaluator


# ------------------------------------------------------------------------------ build

def _digest() -> str:
    h = hashlib.sha256()
    for p in sorted([PROJECT / "pom.xml", PROJECT / "settings.xml", *(PROJECT / "src").rglob("*.java")]):
        h.update(p.relative_to(PROJECT).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build(log=say) -> list[str]:
    """The java command line of the peer, building it first when its sources changed (offline from
    the local Maven repository when that has everything, else from Maven Central)."""
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if not java or not mvn:
        raise RuntimeError("the JVM peer needs Java 17+ (a JDK) and Maven 3 on PATH, "
                           "e.g. `apt-get install openjdk-17-jdk-headless maven`")
    stamp = PROJECT / "target" / "sources.sha256"
    jar = PROJECT / "target" / "makegood-kstreams-peer.jar"
    digest = _digest()
    if not (jar.is_file() and stamp.is_file() and stamp.read_text() == digest):
        t0 = time.monotonic()
        base = [mvn, "-q", "-B", "-s", str(PROJECT / "settings.xml"), "-f", str(PROJECT / "pom.xml"), "package"]
        done = subprocess.run([*base, "-o"], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            log("  the JVM peer's jars are not all cached: building from Maven Central ...")
            done = subprocess.run(base, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            raise RuntimeError("building bench/kstreams failed (mvn package):\n" + (done.stdout + done.stderr)[-4000:])
        stamp.write_text(digest)
        log(f"  built bench/kstreams in {time.monotonic() - t0:.0f} s")
    classpath = os.pathsep.join([str(jar), str(PROJECT / "target" / "libs" / "*")])
    return [java, f"-Xmx{HEAP}", "-cp", classpath, MAIN]


# ------------------------------------------------------------------------------ running

def create_outputs(settings: Settings) -> None:
    """The peer's own output topics, partitioned like the entitlement topic."""
    parts = load_topic_specs(settings.topics_file)[ENTITLEMENTS].partitions
    admin = admin_client(settings)
    for fut in admin.create_topics([NewTopic(settings.topic(t), parts, 1) for t in (REMEDIES, NOTICES)]).values():
        fut.result(30)


class Peer:
    """One PeerApp JVM on a namespace; its JSON lines are read back from its log."""

    def __init__(self, settings: Settings, events: int, state_dir: Path, log: Path, timeout: float = 900):
        self.log = log
        args = ["--namespace", settings.namespace, "--events", str(events), "--state-dir", str(state_dir),
                "--bootstrap", settings.bootstrap, "--schemas", str(settings.schemas_dir),
                "--policy", str(settings.policy_path), "--timeout", str(timeout)]
        if settings.schema_registry_url:
            args += ["--registry", settings.schema_registry_url]
        self.proc = spawn([*build(), *args], log, dict(os.environ))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def lines(self) -> list[dict]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [json.loads(ln) for ln in text.splitlines() if ln.startswith('{"event"')]

    def wait(self, event: str, timeout: float) -> dict:
        """The first JSON line of `event`; RuntimeError if the JVM exits first, PhaseTimeout."""
        deadline = time.monotonic() + timeout
        last_say = time.monotonic()
        while True:
            for line in self.lines():
                if line["event"] == event:
                    return line
                if line["event"] == "timed_out":
                    raise PhaseTimeout(f"kafka streams peer: {line['events']:,} records in its time", line)
            if self.proc.poll() is not None:
                raise RuntimeError(f"the JVM peer exited with {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                raise PhaseTimeout(f"kafka streams peer: no {event!r} within {timeout:.0f} s", {"log": str(self.log)})
            if time.monotonic() - last_say > 10:
                say(f"  waiting for the JVM peer: {event} ...")
                last_say = time.monotonic()
            time.sleep(0.05)

    def stop(self) -> dict | None:
        """SIGTERM (the JVM closes its streams) and its last line."""
        terminate([self.proc], grace=30)
        lines = [ln for ln in self.lines() if ln["event"] == "exit"]
        return lines[-1] if lines else None


def read_remedies(settings: Settings, expected: int, timeout: float,
                  logical: str = REMEDIES) -> tuple[list[bytes], float | None]:
    """Every committed remedy on the peer's output topic (or `logical`, e.g. NOTICES): read (read_committed) until `expected`
    are there (the monotonic time of that is the second value; None: not within `timeout`), then
    until 1 s passes without more (so extras and duplicates are seen too)."""
    topic = settings.topic(logical)
    c = Consumer(settings.kafka_config(**{"group.id": settings.topic("bench.kstreams.check"),
                                          "isolation.level": "read_committed", "enable.auto.commit": False}))
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        reached = None
        quiet_since = time.monotonic()
        while True:
            got = [m for m in c.consume(10_000, timeout=0.2) if not m.error()]
            now = time.monotonic()
            values.extend(m.value() for m in got)
            if got:
                quiet_since = now
            if reached is None and len(values) >= expected:
                reached = now
            if reached is not None and now - quiet_since >= 1.0:
                return values, reached
            if reached is None and now > deadline:
                return values, None
    finally:
        c.close()


# ------------------------------------------------------------------------------ agreement

def _key(r) -> tuple:
    return (r.rule_id, r.action.name, r.subject_id, r.user_id, r.extend_hours, r.amount_krw, r.supersedes)


def expected_totals(policy: Policy, ents: data.Entitlements, revisions: tuple[OutageWindow, ...]) -> dict:
    """Remedies, hours and won the reference owes all of `ents` (decided once per profile)."""
    history = IncidentHistory.of(list(revisions))
    counts = Counter(ents.profile_of)
    out = {"remedies": 0, "extend_hours": 0, "amount_krw": 0}
    for i, prof in enumerate(data.profiles()):
        if not counts[i]:
            continue
        for r in decide_entitlement(policy, history, prof.state(i), Source("bench", 0, 0)).remedies:
            out["remedies"] += counts[i]
            out["extend_hours"] += counts[i] * (r.extend_hours or 0)
            out["amount_krw"] += counts[i] * (r.amount_krw or 0)
    return out


def agreement(codec: Codec, policy: Policy, values: list[bytes], ents: data.Entitlements,
              revisions: tuple[OutageWindow, ...], sample: int = SAMPLE) -> dict:
    """What the peer published against the reference: totals over all, ids over a sample."""
    got: dict[str, tuple] = {}
    duplicates = 0
    for v in values:
        r = codec.decode_obj("remedy_action", v)
        duplicates += r.remedy_id in got
        got[r.remedy_id] = _key(r)
    want = expected_totals(policy, ents, revisions)
    have = {"remedies": len(got), "extend_hours": sum(k[4] or 0 for k in got.values()),
            "amount_krw": sum(k[5] or 0 for k in got.values())}
    stride = max(1, -(-len(ents) // sample))
    picked = range(0, len(ents), stride)
    src = Source("bench", 0, 0)
    ev = evaluate(policy, [(w, src) for w in revisions],
                  [(codec.decode_obj("entitlement_state", ents.values[i]), Source("bench", 0, i)) for i in picked], [])
    expected = {r.remedy_id: _key(r) for r in ev.remedies}
    subjects = {ents.keys[i].decode() for i in picked}
    got_sample = {k: v for k, v in got.items() if v[2] in subjects}
    mismatched = sum(1 for k, v in expected.items() if k in got_sample and got_sample[k] != v)
    out = {"remedies": have["remedies"], "expected": want, "got": have, "duplicates": duplicates,
           "sample_entitlements": len(picked), "sample_remedies": len(expected),
           "sample_missing": len(expected.keys() - got_sample.keys()),
           "sample_unexpected": len(got_sample.keys() - expected.keys()), "sample_mismatched": mismatched}
    out["agree"] = (have == want and not duplicates and not out["sample_missing"]
                    and not out["sample_unexpected"] and not mismatched)
    return out


def describe(a: dict | None) -> str:
    """One line for the log and the table."""
    if not a:
        return "not checked"
    verdict = "AGREE" if a["agree"] else "DISAGREE"
    return (f"{verdict}: {a['got']['remedies']:,} remedies ({a['expected']['remedies']:,} expected), "
            f"{a['got']['extend_hours']:,} h / {a['got']['amount_krw']:,} won "
            f"({a['expected']['extend_hours']:,} h / {a['expected']['amount_krw']:,} won), "
            f"{a['duplicates']} duplicates; batch evaluator on {a['sample_entitlements']:,} entitlements: "
            f"{a['sample_remedies']:,} remedies, {a['sample_missing']} missing, {a['sample_unexpected']} extra, "
            f"{a['sample_mismatched']} different")


# ------------------------------------------------------------------------------ phases

def second_half_rate(lines: list[dict], n: int, done: dict) -> float | None:
    """events/s from the first progress line at or past n/2 to the N-th record: the JVM's rate once
    its JIT has compiled the hot path (the first half of a short run is mostly warm-up)."""
    half = next((ln for ln in lines if ln["event"] == "progress" and ln["events"] >= n // 2
                 and ln.get("elapsed_s")), None)
    if half is None or not done.get("seconds") or done["seconds"] <= half["elapsed_s"]:
        return None
    return (n - half["events"]) / (done["seconds"] - half["elapsed_s"])


def ingest(ctx) -> dict:
    """Windows (OPEN, CLOSED) and N states already on the topics; the peer starts and decides
    them: seconds from its first record processed to the N-th (as the Quix peer is timed)."""
    ns = Namespace("kstreams", ctx.rundir)
    peer = None
    result: dict = {"events": ctx.n, "heap": HEAP, "threads": 1, "guarantee": "exactly_once_v2"}
    try:
        revisions = data.windows()
        _windows(ctx, ns, *revisions)
        _states(ctx, ns)
        create_outputs(ns.settings)
        want = expected_totals(ctx.policy, ctx.ents, revisions)
        say("  Kafka Streams application: RocksDB store + decide + two sinks, exactly-once ...")
        peer = Peer(ns.settings, ctx.n, ns.dir / "kstreams-state", ns.dir / "kstreams.log", ctx.timeout)
        got = peer.wait("processed", ctx.timeout + 180)
        result.update(seconds=got["seconds"], events_per_s=ctx.n / got["seconds"])
        result["events_per_s_second_half"] = second_half_rate(peer.lines(), ctx.n, got)
        values, reached = read_remedies(ns.settings, want["remedies"], 120)
        return _judged(ctx, result, peer, values, ctx.ents, revisions)
    finally:
        if peer is not None:
            result["exit"] = peer.stop()
        ns.drop()


def _judged(ctx, result: dict, peer: Peer, values, ents, revisions) -> dict:
    """`result` with the peer's memory and its decisions checked against the inputs."""
    result["memory_kb"] = memory_kb(peer.pid)
    result["agreement"] = agreement(ctx.codec, ctx.policy, values, ents, revisions)
    say(f"  agreement: {describe(result['agreement'])}")
    return result


def sweep(ctx) -> dict:
    """N states stored while the window is OPEN; then CLOSED -> the last remedy committed on the
    peer's output topic (read_committed), as makegood's sweep is timed to the last remedy ledgered."""
    ents = ctx.ents.head(ctx.sweep_n or ctx.n)
    n = len(ents)
    ns = Namespace("kstreams-sweep", ctx.rundir)
    peer = None
    result: dict = {"entitlements": n, "heap": HEAP, "threads": 1, "guarantee": "exactly_once_v2"}
    try:
        opened, closed = data.windows()
        create_outputs(ns.settings)
        _windows(ctx, ns, opened)
        peer = Peer(ns.settings, n, ns.dir / "kstreams-state", ns.dir / "kstreams.log", ctx.timeout)
        peer.wait("running", 300)
        _states(ctx, ns, ents)
        peer.wait("processed", ctx.timeout + 60)
        time.sleep(2.0)                           # as makegood's sweep: the OPEN revision's (empty) sweep
        want = expected_totals(ctx.policy, ents, (opened, closed))
        result["expected_remedies"] = want["remedies"]
        say(f"  window CLOSED: expecting {want['remedies']:,} remedies (and as many notices)")
        t0 = time.monotonic()
        _windows(ctx, ns, closed)
        values, reached = read_remedies(ns.settings, want["remedies"], ctx.timeout)
        if reached is None:
            result["timed_out"] = f"kafka streams sweep: {len(values):,} of {want['remedies']:,} remedies"
        else:
            result["seconds"] = reached - t0
            result["entitlements_per_s"] = n / result["seconds"]
        return _judged(ctx, result, peer, values, ents, (opened, closed))
    finally:
        if peer is not None:
            result["exit"] = peer.stop()
        ns.drop()
