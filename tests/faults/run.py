"""One fault run: the reference scenario through two real workers while a test injects a fault.

The scenario (streams/dev/scenario.py, the demo's) is published in the order it happened: the
window opened and the entitlement states; the window closed and amended (every worker sweeps
its partitions); once those remedies are out, the damage reports and the poison records. The
test injects its fault between or during those steps, then `finish` reads every output topic
read committed and counts what differs from the batch evaluator (kit.tally), prints the run's
line and asserts it is clean. Every wait has a deadline.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable

from processors.batch import Evaluation, evaluate
from processors.model import Source
from processors.policy import Policy
from processors.windows import IncidentHistory
from streams.decide.admit import Admission, Rejection
from streams.dev.demo import SCHEMA, Inputs, Publisher
from streams.dev.scenario import generate
from streams.kafka.reader import PartitionReader
from streams.kafka.topics import ACTIONS, ENTITLEMENTS, OUTAGES, REPORTS
from streams.dev.stack import LocalKafka, RedisServer
from streams.settings import Settings
from streams.wire.codec import Codec
from tests.integration import kit

SETTLE_S = 180          # the longest a run may take to settle after its last fault
QUIET_S = 5             # after every id is there: time for late (duplicate) records to land
PACE_S = 120            # the longest a run waits for a step before going on regardless
ONE_MIB_PLUS = 1_048_576 + 1024     # the publisher takes records a little over the broker's ~1 MiB


@dataclass
class Stack:
    settings: Settings
    broker: LocalKafka | None      # the run's own broker, else the shared one
    redis: RedisServer | None      # the run's own Redis, else the shared one


def accepted_in_order(windows: list[tuple[Any, Source]]) -> list[tuple[Any, Source]]:
    """The revisions an incident feed accepts, reading the outage topic in offset order: a
    revision not newer than the incident's latest is ignored (DESIGN §2). The evaluator puts
    revisions in revision order; this gives it the ones that arrived in time."""
    histories: dict[str, IncidentHistory] = {}
    out = []
    for w, src in sorted(windows, key=lambda ws: (ws[1].partition, ws[1].offset)):
        accepted = histories.get(w.incident_id, IncidentHistory()).accept(w)
        if accepted is not None:
            histories[w.incident_id] = accepted
            out.append((w, src))
    return out


class FaultRun:
    def __init__(self, name: str, stack: Stack, codec: Codec, policy: Policy, logdir: Any,
                 lines: list[str], *, seed: int = 1015, scale: float = 1.0, workers: int = 2):
        self.name = name
        self.stack = stack
        self.settings = stack.settings
        self.codec = codec
        self.policy = policy
        self.lines = lines
        self.n_workers = workers
        self.admission = Admission(codec, policy)
        self.scenario = generate(seed=seed, scale=scale, codec=codec)
        self.inputs = Inputs([], [], [])
        self.dead: list[Source] = []          # records owed exactly one dead letter each
        self.pub = Publisher(self.settings, codec, self.inputs, **{"message.max.bytes": ONE_MIB_PLUS})
        self.workers = kit.Workers(self.settings, logdir)
        self.rng = random.Random(f"{name}/{seed}")
        self.events: list[str] = []
        self.t0 = time.monotonic()

    def close(self) -> None:
        self.pub.close()
        self.workers.stop()

    def note(self, event: str) -> None:
        self.events.append(f"{time.monotonic() - self.t0:6.1f} s  {event}")

    # ------------------------------------------------------------------ the scenario

    def start(self) -> None:
        self.workers.start(self.n_workers)
        self.workers.wait_ready()
        self.t0 = time.monotonic()

    def opened(self) -> None:
        """The window opened; every entitlement state."""
        self.pub.records(OUTAGES, self.scenario.windows[:1])
        self.pub.records(ENTITLEMENTS, self.scenario.entitlements)
        self.note(f"published the open window and {len(self.scenario.entitlements):,} entitlement states")

    def closed(self) -> None:
        """The window closed, then amended: every worker sweeps its partitions."""
        self.pub.records(OUTAGES, self.scenario.windows[1:])
        self.note("published the closed and the amended window")

    def reported(self) -> None:
        """The damage reports and the scenario's poison records."""
        self.pub.records(REPORTS, self.scenario.reports)
        self.note(f"published {len(self.scenario.reports):,} reports")
        self.raw(self.scenario.malformed)

    def raw(self, items: Iterable[tuple[str, bytes | None, bytes]]) -> None:
        """Publish values as they are; each is owed what the worker's admission makes of it:
        a dead letter, or its place in the evaluator's input."""
        items = list(items)
        targets = {OUTAGES: self.inputs.windows, ENTITLEMENTS: self.inputs.entitlements, REPORTS: self.inputs.reports}
        dead = len(self.dead)
        for (logical, key, value), (p, o) in zip(items, self.pub.raw(items)):
            src = Source(self.settings.topic(logical), p, o)
            got = self.admission.check(SCHEMA[logical], value, key)
            if isinstance(got, Rejection):
                self.dead.append(src)
            else:
                targets[logical].append((got, src))
        dead = len(self.dead) - dead
        self.note(f"published {len(items)} raw values: {dead} owed a dead letter, {len(items) - dead} still valid")

    def expected(self) -> Evaluation:
        return evaluate(self.policy, accepted_in_order(self.inputs.windows), self.inputs.entitlements,
                        self.inputs.reports)

    # ------------------------------------------------------------------ watching

    def _retrying(self, what: Any, timeout: float, every: float = 0.3) -> Any:
        """`what()` until it returns something true (the broker may be down a while); else None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = what()
                if got:
                    return got
            except Exception:  # noqa: BLE001 - a broker restarting: ask again
                pass
            time.sleep(every)
        return None

    def consumed(self, timeout: float = PACE_S) -> bool:
        """Whether the entitlement group committed every state published (pacing only)."""
        topic, group = self.settings.topic(ENTITLEMENTS), self.settings.topic("makegood.entitlements")

        def done() -> bool:
            with PartitionReader(self.settings) as reader:
                ends = {s.partition: s.end for s in reader.whole(topic)}
                got = reader.committed(group, topic, sorted(ends))
            return all(got[p] >= end for p, end in ends.items())
        return bool(self._retrying(done, timeout))

    def produced(self, logical: str = ACTIONS, reader: PartitionReader | None = None) -> int:
        """Records on an output topic (uncommitted ones included): to catch a sweep mid-way."""
        if reader is None:
            with PartitionReader(self.settings) as reader:
                return self.produced(logical, reader)
        return sum(s.end - s.start for s in reader.whole(self.settings.topic(logical)))

    def mid_sweep(self, timeout: float = PACE_S) -> int:
        """Wait until the sweep has published its first remedies; how many are out then (the
        test asserts fewer than the evaluator's, i.e. that its fault lands mid-sweep). One
        reader serves every look: a new client per look took longer than a quiet machine's
        sweep of the scenario, and the first look then found it done."""
        with PartitionReader(self.settings) as reader:
            n = self._retrying(lambda: (n := self.produced(reader=reader)) > 0 and n, timeout, every=0.02) or 0
        self.note(f"{n:,} remedies on the topic")
        return n

    def settle(self, expected: Evaluation | None = None, *, timeout: float = SETTLE_S,
               quiet: float = QUIET_S) -> kit.Tally:
        """Wait until every expected output is on its topic (or the deadline), then `quiet`
        seconds for late records; the tally then."""
        expected = expected or self.expected()
        got = self._retrying(lambda: (t := kit.tally(self.settings, self.codec, expected, self.dead)).missing == 0
                             and t, timeout)
        if got is None and not any(self.workers.alive()):
            raise AssertionError("every worker died:\n" + self.workers.logs())
        time.sleep(quiet)
        return kit.tally(self.settings, self.codec, expected, self.dead)

    # ------------------------------------------------------------------ faults

    def restart(self, n: int, timeout: float = 120) -> None:
        """Stop every worker (SIGTERM), start `n` new ones, wait until each has swept what it
        was assigned (its catch-up done)."""
        self.workers.stop()
        first = len(self.workers.procs)
        self.workers.start(n)
        self.note(f"{n} workers restarted")
        deadline = time.monotonic() + timeout
        logs = [self.workers.logdir / f"worker-{i}.log" for i in range(first, first + n)]
        while not all("sweep " in log.read_text(errors="replace") for log in logs):
            assert time.monotonic() < deadline, "restarted workers did not sweep:\n" + self.workers.logs()
            assert all(self.workers.alive()[first:]), "a restarted worker died:\n" + self.workers.logs()
            time.sleep(0.5)

    def live(self) -> list[int]:
        return [i for i, alive in enumerate(self.workers.alive()) if alive]

    def sigkill(self, within: float) -> None:
        """SIGKILL a random worker at a random moment in the next `within` seconds; start a
        new one in its place at once."""
        time.sleep(self.rng.uniform(0, within))
        i = self.rng.choice(self.live())
        self.workers.kill(i)
        self.note(f"SIGKILL worker {i}")
        self.workers.start(1)

    def pause(self, seconds: float) -> None:
        """SIGSTOP a random worker for `seconds` (past its session timeout), then SIGCONT."""
        i = self.rng.choice(self.live())
        pid = self.workers.procs[i].pid
        os.kill(pid, signal.SIGSTOP)
        self.note(f"SIGSTOP worker {i}")
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        self.note(f"SIGCONT worker {i}")

    def offsets(self) -> list[str]:
        """Each input partition's end and its consumer group's committed offset (diagnosis)."""
        lines = []
        with PartitionReader(self.settings) as reader:
            for logical, group in ((ENTITLEMENTS, "makegood.entitlements"), (REPORTS, "makegood")):
                topic = self.settings.topic(logical)
                ends = {s.partition: s.end for s in reader.whole(topic)}
                got = reader.committed(self.settings.topic(group), topic, sorted(ends))
                lines.append(f"{logical} end/committed: " + " ".join(f"{p}:{e}/{got[p]}" for p, e in ends.items()))
        return lines

    def kill_broker(self, down_s: float) -> None:
        """kill -9 the (private) broker, leave it down `down_s`, start it on the same data."""
        assert self.stack.broker is not None, "a broker fault needs the run's own broker"
        self.stack.broker.kill()
        self.note("kill -9 the broker")
        time.sleep(down_s)
        self.stack.broker.up(lambda _m: None)
        self.note("broker up again")

    def kill_redis(self, down_s: float) -> None:
        """kill -9 the (private) Redis, leave it down `down_s`, start it from its AOF."""
        assert self.stack.redis is not None, "a Redis fault needs the run's own Redis"
        self.stack.redis.kill()
        self.note("kill -9 Redis")
        time.sleep(down_s)
        self.stack.redis.up(lambda _m: None)
        self.note("Redis up again")

    def cli(self, *argv: str, timeout: float = 180) -> str:
        """Run a `makegood` command against the run's stack and namespace; its stdout."""
        env = dict(os.environ, MAKEGOOD_NAMESPACE=self.settings.namespace, MAKEGOOD_BOOTSTRAP=self.settings.bootstrap,
                   MAKEGOOD_REDIS_URL=self.settings.redis_url)
        done = subprocess.run([sys.executable, "-m", "streams.cli", *argv], env=env, capture_output=True,
                              text=True, timeout=timeout)
        self.note(f"makegood {' '.join(argv)}: {done.stdout.strip()[-200:]}")
        assert done.returncode == 0, f"makegood {' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done.stdout

    # ------------------------------------------------------------------ the verdict

    def finish(self, **settle: Any) -> kit.Tally:
        """Settle, print the run's line, and assert 0 missing, 0 wrong, 0 duplicate."""
        t = self.settle(**settle)
        line = t.line(self.name, time.monotonic() - self.t0)
        self.lines.append(line)
        print("\n" + "\n".join(self.events) + "\n" + line)
        if not t.clean:
            (self.workers.logdir / "problems.txt").write_text("\n".join(t.problems + self.offsets()) + "\n")
        assert t.clean, "\n".join([line, *t.examples, "events:", *self.events, "worker logs:",
                                   self.workers.logs()])
        return t
