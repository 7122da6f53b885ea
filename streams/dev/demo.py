"""`makegood demo`: the reference incident end to end on the local stack.

Local stack up, a fresh namespace of topics, real `makegood worker` processes, the seeded
15 October 2022 scenario published in the order it happened (window opened, entitlements,
window closed, window amended, then the damage reports and a few poison records), a wait for
the pipeline to settle, a field-by-field comparison with the batch evaluator, and the report.
"""
from __future__ import annotations

import dataclasses
import json
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from processors.batch import Evaluation, evaluate
from processors.model import (DamageReport, EntitlementState, OutageWindow, ReviewDecision, Source, from_dict,
                              to_dict)
from processors.policy import load_policy

import streams.dev.stack as devstack
from streams.wire.codec import Codec
from streams.wire.framing import open_codec
from streams.ledger.store import SyncLedger
from streams.dev.workers import WorkerPool
from streams.dev.decisions import review_decisions
from streams.dev.scenario import INCIDENT, Scenario, generate
from streams.settings import Settings
from streams.kafka.topics import ACTIONS, DECISIONS, ENTITLEMENTS, NOTICES, OUTAGES, REPORTS, REVIEWS, create_topics
from streams.errors import DemoError, ProduceError
from streams.kafka.producer import Producer

SCHEMA = {OUTAGES: "outage_window", ENTITLEMENTS: "entitlement_state", REPORTS: "damage_report",
          DECISIONS: "review_decision"}
RECORD = {OUTAGES: OutageWindow, ENTITLEMENTS: EntitlementState, REPORTS: DamageReport, DECISIONS: ReviewDecision}


@dataclass
class Inputs:
    """The valid records published so far, with their Kafka coordinates (the oracle's input)."""
    windows: list
    entitlements: list
    reports: list
    approvals: list = field(default_factory=list)
    decisions: list = field(default_factory=list)    # reviewers' decisions (remedy.review-decisions.v1)

    def oracle(self, policy) -> Evaluation:
        return evaluate(policy, self.windows, self.entitlements, self.reports, approvals=self.approvals,
                        decisions=self.decisions)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Publisher:
    """Publishes the scenario's records and notes where each valid one landed (the oracle's input)."""

    def __init__(self, settings: Settings, codec: Codec, inputs: Inputs, **config: object):
        self.settings = settings
        self.codec = codec
        self.inputs = inputs
        self.producer = Producer(settings, **{"linger.ms": 20, "batch.size": 512 * 1024, **config})

    def records(self, logical: str, pairs: list[tuple[str, dict | None]]) -> None:
        topic = self.settings.topic(logical)
        target = {OUTAGES: self.inputs.windows, ENTITLEMENTS: self.inputs.entitlements,
                  REPORTS: self.inputs.reports, DECISIONS: self.inputs.decisions}[logical]
        records = [from_dict(RECORD[logical], value) if value is not None else None for _, value in pairs]
        out = [(topic, key.encode(), self.codec.encode(SCHEMA[logical], value) if value is not None else None, None)
               for key, value in pairs]
        for record, (partition, offset) in zip(records, self._send(out)):
            if record is not None:
                target.append((record, Source(topic, partition, offset)))

    def raw(self, items: list[tuple[str, bytes, bytes]]) -> list[tuple[int, int]]:
        """Publish (logical topic, key, value) as they are; returns where each one landed."""
        return self._send([(self.settings.topic(logical), key, value, None) for logical, key, value in items])

    def _send(self, out: list) -> list[tuple[int, int]]:
        try:
            return self.producer.send_batch_sync(out, 60)
        except ProduceError as exc:
            raise DemoError(f"publishing failed: {exc}") from None

    def close(self) -> None:
        self.producer.close()


def wait_for_ids(settings: Settings, expected: int, say: Callable[[str], None], pool: WorkerPool,
                 timeout: float = 900) -> float:
    """Wait until the ledger holds `expected` ids; returns the seconds waited."""
    ledger = SyncLedger(settings)
    t0 = last_print = time.monotonic()
    last = 0
    while True:
        n = ledger.size()
        now = time.monotonic()
        if n >= expected:
            say(f"  {n:,} / {expected:,} outputs issued and ledgered in {now - t0:.1f} s")
            return now - t0
        if now - last_print > 3:
            rate = (n - last) / (now - last_print)
            say(f"  {n:,} / {expected:,} outputs issued ({rate:,.0f}/s)")
            last, last_print = n, now
        if now - t0 > timeout:
            raise DemoError(f"the pipeline did not settle: {n:,} of {expected:,} outputs after {timeout:.0f} s")
        pool.check()
        time.sleep(0.25)


def wait_for_outcomes(settings: Settings, logical: str, expected: int, pool: WorkerPool,
                      timeout: float = 600) -> None:
    """Wait until the workers recorded an outcome for `expected` records of an input topic."""
    ledger = SyncLedger(settings)
    deadline = time.monotonic() + timeout
    while sum(ledger.outcomes(logical).values()) < expected:
        if time.monotonic() > deadline:
            raise DemoError(f"only {ledger.outcomes(logical)} of {expected:,} {logical} records were processed")
        pool.check()
        time.sleep(0.25)


def approve_held(settings: Settings, codec: Codec, policy: Any, inputs: Inputs, held: Evaluation,
                 say: Callable[[str], None], pool: WorkerPool, timeout: float = 600) -> Evaluation:
    """The operator's step: wait until the workers have counted what is held, show it as
    `makegood incident pending` does, approve the latest held revision, and return the oracle
    with that approval."""
    from streams.cli.incident import hold_lines
    from streams.decide.admit import Admission
    from streams.ledger.holds import read_holds, write_approval
    admission = Admission(codec, policy)
    incident_id, revision = held.holds[-1].incident_id, held.holds[-1].revision
    say(f"== held for approval: {incident_id} is over the policy's limits; nothing is issued yet")
    deadline = time.monotonic() + timeout
    while True:
        state = read_holds(settings, admission)
        pending = state.pending(incident_id)
        if pending and all(h.cost is not None for h in pending):
            break
        if time.monotonic() > deadline:
            raise DemoError(f"the workers did not count {incident_id} within {timeout:.0f} s")
        pool.check()
        time.sleep(0.5)
    for h in pending:
        say("\n".join("  " + line for line in hold_lines(h, state.limits)))
    say(f"  $ makegood incident approve {incident_id} --revision {revision} --by demo-operator")
    _, record = write_approval(settings, admission, state, incident_id, revision, "demo-operator",
                               int(time.time() * 1000))
    inputs.approvals.append((record, Source(settings.topic("makegood.approvals.v1"), 0, len(inputs.approvals))))
    return inputs.oracle(policy)


def compare(settings: Settings, codec: Codec, expected: Evaluation) -> list[str]:
    """Differences between what is on the output topics and the batch evaluator's outcome."""
    from streams.report.collect import read_until_end
    want = {ACTIONS: ("remedy_action", expected.remedies), REVIEWS: ("review_case", expected.reviews),
            NOTICES: ("user_notice", expected.notices)}
    got: dict[str, set[str]] = {logical: set() for logical in want}

    def take(logical: str, value: bytes | None, _timestamp: int | None) -> None:
        got[logical].add(json.dumps(to_dict(codec.decode_obj(want[logical][0], value)), sort_keys=True))

    read_until_end(settings, list(want), take)
    problems = []
    for logical, (_, records) in want.items():
        rows = {json.dumps(to_dict(r), sort_keys=True) for r in records}
        if got[logical] != rows:
            problems.append(f"{logical}: {len(rows - got[logical])} missing, {len(got[logical] - rows)} unexpected")
    return problems


def read_reviews(settings: Settings, codec: Codec) -> list:
    """The review cases on remedy.reviews.v1, as a reviewer's tool reads them."""
    from streams.report.collect import read_until_end
    cases: list = []
    read_until_end(settings, [REVIEWS], lambda _t, value, _ts: cases.append(codec.decode_obj("review_case", value)))
    return cases


def run_demo(base: Settings, *, scale: float = 1.0, workers: int = 2, seed: int = 1015,
             say: Callable[[str], None] = print) -> int:
    t_start = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)   # `kill`/`timeout`: stop the workers on the way out
    say("== local stack")
    devstack.stack_up(base, say=lambda m: say("  " + m))
    namespace = base.namespace or f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    settings = Settings.from_env(namespace=namespace)
    rundir = settings.state_dir / "demo" / namespace
    rundir.mkdir(parents=True, exist_ok=True)
    create_topics(settings, say=lambda m: None)
    codec = open_codec(settings)
    policy = load_policy(str(settings.policy_path))
    scenario: Scenario = generate(seed=seed, scale=scale, codec=codec)
    s = scenario.summary()
    say(f"== scenario {INCIDENT} (seed {seed}, scale {scale:g}), namespace {namespace}")
    say(f"  {s['entitlement_ids']:,} entitlements ({s['entitlements']:,} states), {s['reports']:,} damage reports "
        f"({s['by_category']['PAID_SERVICE']:,} about paid services, {s['business']:,} from businesses), "
        f"{s['malformed']} malformed records, window revisions OPEN -> CLOSED 120 h -> CLOSED 127 h")

    pool = WorkerPool(settings, rundir)
    inputs = Inputs([], [], [], [])
    pub = Publisher(settings, codec, inputs)
    try:
        say(f"== {workers} worker(s) joining the consumer group")
        pool.start(workers)
        pool.wait_ready()
        t_pub = time.monotonic()
        say("== publishing: window opened, entitlement states, window closed, window amended")
        opened, closed, amended = scenario.windows
        pub.records(OUTAGES, [opened])
        pub.records(ENTITLEMENTS, scenario.entitlements)
        # the states exist before the window closes, as they did in October 2022
        wait_for_outcomes(settings, ENTITLEMENTS, len(scenario.entitlements), pool)
        pub.records(OUTAGES, [closed, amended])
        first = inputs.oracle(policy)
        if first.holds:       # over the policy's approval limits: approve as an operator would
            first = approve_held(settings, codec, policy, inputs, first, say, pool)
        wait_for_ids(settings, len(first.remedies) + len(first.reviews) + len(first.notices), say, pool)
        say("== publishing: damage reports (19 Oct - 6 Nov) and poison records")
        pub.records(REPORTS, scenario.reports)
        pub.raw(scenario.malformed)
        expected = inputs.oracle(policy)
        invalid = len(expected.invalid) + len(scenario.malformed)
        wait_for_ids(settings, len(expected.remedies) + len(expected.reviews) + len(expected.notices) + invalid,
                     say, pool)
        settle_s = time.monotonic() - t_pub
        say("== reviewers decide a few large business losses (remedy.review-decisions.v1)")
        decisions = review_decisions(read_reviews(settings, codec))
        pub.records(DECISIONS, decisions)
        expected = inputs.oracle(policy)
        wait_for_ids(settings, len(expected.remedies) + len(expected.reviews) + len(expected.notices) + invalid,
                     say, pool)
        say("== checking the topics against the batch evaluator")
        problems = compare(settings, codec, expected)
    finally:
        pub.close()
        pool.stop()

    from streams.report.collect import collect
    from streams.report.text import render_text
    from streams.report.html import render_html
    report = collect(settings, codec, INCIDENT)
    say("")
    say(render_text(report))
    html = rundir / "report.html"
    html.write_text(render_html(report))
    say(f"HTML report: {html}")
    say(f"Explore: MAKEGOOD_NAMESPACE={namespace} makegood consume remedy.actions.v1 --from-beginning --until-idle 2")
    say(f"Pipeline settled {settle_s:.1f} s after the first record was published; demo wall time "
        f"{time.monotonic() - t_start:.1f} s.")
    if problems:
        say("DOES NOT match the batch evaluator: " + "; ".join(problems))
        return 1
    say(f"matches the batch evaluator: {len(expected.remedies):,} remedies, {len(expected.reviews):,} review cases, "
        f"{len(expected.notices):,} notices identical field by field; {invalid} records dead-lettered; "
        f"{len(decisions)} review decisions published")
    return 0
