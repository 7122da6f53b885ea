"""A worker that stops making progress says where it waits (streams/worker/consumer.py,
streams/worker/watch.py): a batch still in hand after STUCK_S is logged with the await chain of
every task, and an event loop blocked for STALL_DUMP_S gets every thread's stack on stderr."""
import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest

from streams.errors import GroupFenced
from streams.settings import Settings
from streams.worker import consumer as consumer_mod
from streams.worker.consumer import GroupConsumer
from streams.worker.gate import Gate


def _member(handle) -> GroupConsumer:
    async def nothing(*_):
        return None
    return GroupConsumer(Settings(bootstrap="127.0.0.1:1", schema_registry_url=""), "reports", ["t"],
                         lambda *_: None, nothing, nothing, handle)


def test_a_batch_stuck_at_the_gate_is_logged_with_where_it_waits(monkeypatch, caplog):
    monkeypatch.setattr(consumer_mod, "STUCK_S", 0.2)
    gate, release = Gate(), asyncio.Event()

    async def holder():
        async with gate.exclusive():
            await release.wait()

    async def handle(msgs, _consumer):
        async with gate.exclusive():
            return None

    async def main():
        held = asyncio.ensure_future(holder())
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, release.set)
        await _member(handle)._watched(["m1", "m2"])
        await held

    with caplog.at_level(logging.WARNING, logger="streams.worker.consumer"):
        asyncio.run(main())
    stuck = [r.getMessage() for r in caplog.records if "still in hand" in r.getMessage()]
    assert stuck[0].startswith("reports batch of 2 records still in hand after 0 s; where each task waits:")
    assert "holder > " in stuck[0] and "Event.wait" in stuck[0]     # who holds the gate, and on what
    assert "handle > " in stuck[0] and "__aenter__" in stuck[0]     # the batch, waiting at the gate
    assert len(stuck) >= 2 and "where each task waits" not in stuck[1]   # the stacks once per batch


def test_what_the_handler_raises_still_reaches_the_consumer_loop(monkeypatch):
    monkeypatch.setattr(consumer_mod, "STUCK_S", 0.05)

    async def handle(msgs, _consumer):
        await asyncio.sleep(0.12)
        raise GroupFenced("send offsets: ILLEGAL_GENERATION")

    with pytest.raises(GroupFenced):
        asyncio.run(_member(handle)._watched(["m"]))


def test_a_blocked_event_loop_dumps_every_threads_stack(tmp_path):
    """A real blocked loop, in a child process: time.sleep on the loop thread stands in for a
    call that never returns; the Watch's re-armed faulthandler timer fires anyway."""
    script = textwrap.dedent("""
        import asyncio, time
        from streams.worker import watch as w

        class Metrics:
            class loop_lag:
                @staticmethod
                def set(v): pass

        class Health:
            def beat(self): pass

        async def main():
            watch = w.Watch.__new__(w.Watch)
            watch.stall_dump_s, watch.metrics, watch.health = 0.5, Metrics, Health()
            watch.evaluate = lambda: True
            tick = asyncio.ensure_future(watch._tick())
            await asyncio.sleep(0.2)
            time.sleep(1.2)              # the loop is blocked here
            await asyncio.sleep(0.7)
            tick.cancel()
        asyncio.run(main())
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Timeout (0:00:00.500000)!" in run.stderr, run.stderr
    assert "in main" in run.stderr                       # the loop thread's frame: where it blocked
    assert "the event loop was blocked for 1 s" in run.stderr
