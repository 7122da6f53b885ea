"""The on-disk entitlement store (streams/worker/rocks.py, restore.py) with real workers, broker and
Redis: a restart reads nothing its store already holds, a partition handed back replays only
what its other owner committed, and a store that cannot be opened is rebuilt from the topic.
Each test ends with a sweep whose remedies must equal the batch evaluator's, so the states
the store kept (and replayed) are the right ones."""
from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter


from processors.batch import evaluate
from tests.integration import kit

RESTORED = re.compile(r"entitlement store restored in [\d.]+ s: (.*); (\d+) records read")


def _restores(log: str) -> list[tuple[str, int]]:
    """(what each partition needed, records read) of each restore a worker logged, in order."""
    return [(m.group(1), int(m.group(2))) for m in RESTORED.finditer(log)]


def _wait_log(workers, i: int, text: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = workers.log(i)
        if text in log:
            return log
        assert workers.procs[i].poll() is None, f"worker {i} exited:\n{log[-3000:]}"
        time.sleep(0.3)
    raise AssertionError(f"worker {i} never logged {text!r}:\n{workers.log(i)[-3000:]}")


def _assert_oracle(settings, codec, policy, pub, workers):
    expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports).remedies
    msgs = kit.settle(settings, codec, len(expected), workers=workers, timeout=240)
    got = [codec.decode_obj("remedy_action", m.value()) for m in msgs]
    assert kit.as_rows(got) == kit.as_rows(expected), workers.logs()


def test_a_restart_after_sigkill_reads_nothing_its_store_holds_and_a_broken_store_is_rebuilt(
        settings, codec, workers, policy):
    n = 3_000
    workers.start(1)
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(n, seed=21), pub)
    kit.wait_outcomes(settings, "entitlement.states.v1", n)
    first = _restores(workers.log(0))
    assert first and first[0][1] == 0          # a new store, an empty topic at assignment
    workers.kill(0)

    workers.start(1)                           # same state dir: the store the killed worker left
    log = _wait_log(workers, 1, "assigned entitlement partitions")
    (needed, read), = _restores(log)
    assert read == 0 and "restored from offset 0" not in needed and "current at" in needed, needed
    assert f"opened: {n} states" in log
    workers.stop()

    # a store that cannot be opened: moved aside, every partition restored from the topic
    slot = workers.logdir / "state" / "stores" / settings.namespace / "0"
    for f in slot.glob("MANIFEST-*"):
        f.write_bytes(b"not a manifest")
    workers.procs.clear()
    workers.start(1)
    log = _wait_log(workers, 0, "assigned entitlement partitions")
    assert "moved aside and rebuilt" in log
    (needed, read), = _restores(log)
    assert read == n and "tail" not in needed and "restored from offset 0" in needed, needed

    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    _assert_oracle(settings, codec, policy, pub, workers)


def test_a_partition_handed_back_replays_only_what_its_other_owner_committed(settings, codec, workers, policy):
    workers.start(1)
    pub = kit.Published()
    first = kit.entitlements(1_500, seed=31)
    kit.publish(settings, codec, "entitlement.states.v1", first, pub)
    kit.wait_outcomes(settings, "entitlement.states.v1", len(first))

    workers.start(1)                           # worker 1 takes a share, restoring it from the topic
    log1 = _wait_log(workers, 1, "assigned entitlement partitions")
    taken = {int(p) for p in re.search(r"assigned entitlement partitions \[([\d, ]+)\]", log1).group(1).split(", ")}
    time.sleep(2)                              # worker 0 took the rest in the same rebalance

    # while it holds them: new entitlements and newer states of old ones (newer wins)
    newer = [dataclasses.replace(e, updated_at=e.updated_at + kit.HOUR, valid_until=e.valid_until + 3 * kit.DAY)
             for e in first[:400]]
    second = kit.entitlements(600, seed=32, prefix="f") + newer
    before = len(pub.entitlements)
    kit.publish(settings, codec, "entitlement.states.v1", second, pub)
    kit.wait_outcomes(settings, "entitlement.states.v1", len(first) + len(second))
    on_taken = Counter(s.partition for _, s in pub.entitlements[before:] if s.partition in taken)
    assert on_taken, "worker 1 held no partition the second batch landed on"

    workers.kill(1, sig=15)                    # SIGTERM: worker 0 gets its partitions back
    workers.procs[1].wait(30)
    deadline = time.monotonic() + 90
    while not any("tail" in needed for needed, _ in _restores(workers.log(0))) and time.monotonic() < deadline:
        time.sleep(0.3)
    needed, read = _restores(workers.log(0))[-1]
    assert "restored from offset 0" not in needed, needed
    assert read == sum(on_taken.values()), (needed, read, on_taken)
    for p in on_taken:
        assert f"p{p} tail " in needed, needed

    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    _assert_oracle(settings, codec, policy, pub, workers)
