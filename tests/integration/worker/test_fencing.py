"""A paused worker's output is fenced: billing, reading committed, sees each remedy once.

SIGSTOP is what a long GC pause, a frozen VM or a stalled node looks like from outside: the
worker holds records it has produced but not committed, the group hands its partitions to the
other worker, which decides them again; when the paused one resumes, its transaction must fail
(the group coordinator refuses its offsets) and be aborted. Before transactions this produced
~145 duplicate records per run."""
from __future__ import annotations

import signal
import time
from collections import Counter

import redis as redis_lib

from processors.batch import evaluate
from processors.policy import load_policy
from streams.ledger.store import Keys
from streams.settings import ROOT
from tests.integration import kit
from tests.integration.conftest import read_topic

PAUSE_S = 20          # past both the group session timeout (10 s) and a transaction's first minute


def test_a_paused_worker_cannot_publish_what_its_successor_published(settings, codec, tmp_path):
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    workers = kit.Workers(settings, tmp_path)
    try:
        workers.start(2)
        workers.wait_ready()
        pub = kit.Published()
        open_, closed, amended = kit.windows()
        kit.publish(settings, codec, "outage.windows.v1", [open_], pub)
        n = 12_000
        kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(n, seed=11), pub)
        kit.wait_outcomes(settings, "entitlement.states.v1", n)
        kit.publish(settings, codec, "outage.windows.v1", [closed, amended], pub)
        expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports)
        # pause worker 0 while its sweep is publishing: some of the sweep is out, not all
        ledger = redis_lib.Redis.from_url(settings.redis_url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ledger.scard(Keys(settings.redis_prefix).ledger) < 200:
            time.sleep(0.01)
        workers.procs[0].send_signal(signal.SIGSTOP)
        try:
            time.sleep(PAUSE_S)
        finally:
            workers.procs[0].send_signal(signal.SIGCONT)
        owed = len(expected.remedies) + len(expected.notices)
        kit.settle(settings, codec, len(expected.remedies), workers=workers, timeout=240)
        kit.settle(settings, codec, len(expected.notices), workers=workers, timeout=120, topic="remedy.notices.v1")
        time.sleep(5)           # the resumed worker has had time to try its transaction
        remedies = [codec.decode_obj("remedy_action", m.value()) for m in read_topic(settings, "remedy.actions.v1")]
        notices = [codec.decode_obj("user_notice", m.value()) for m in read_topic(settings, "remedy.notices.v1")]
        dup = sum(c - 1 for c in Counter(r.remedy_id for r in remedies).values()) + \
            sum(c - 1 for c in Counter(x.notice_id for x in notices).values())
        assert kit.as_rows(remedies) == kit.as_rows(expected.remedies)
        assert kit.as_rows(notices) == kit.as_rows(expected.notices)
        assert dup == 0, f"{dup} duplicate records of {owed} read committed\n" + workers.logs()
        assert all(workers.alive()), workers.logs()
    finally:
        for p in workers.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        workers.stop()
