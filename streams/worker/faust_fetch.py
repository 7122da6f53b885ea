"""The one faust consumer setting makegood must change and faust does not expose.

faust builds its aiokafka consumer with `fetch_max_wait_ms=1500`, hard-coded
(faust/transport/drivers/aiokafka.py, `_create_worker_consumer`). aiokafka sends one fetch per
broker at a time and leaves out partitions whose records the app has not taken yet, so a fetch
can hold only partitions with nothing new (the retriage topic, say); the broker then keeps it
for the full 1.5 s, and the report partitions wait behind it. Measured with the bench at 1,000
reports/s: the worker alternated between ~100 ms and a steady 1.5-1.9 s of lag from the first
record of a burst (python -m bench --only reports). With 100 ms the broker answers an idle
fetch ten times a second, which costs nothing worth measuring.
"""
from __future__ import annotations

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS = 100


def shorten_fetch_wait(ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make every faust worker consumer created from now on in this process wait at most `ms`."""
    thread_class = faust_aiokafka.AIOKafkaConsumerThread
    original = thread_class._create_worker_consumer
    if getattr(original, "makegood_fetch_wait", None) == ms:
        return
    original = getattr(original, "makegood_original", original)

    def create_worker_consumer(self, transport):
        consumer = original(self, transport)
        # aiokafka reads this when start() builds the fetcher, i.e. after this returns
        consumer._fetch_max_wait_ms = ms
        return consumer

    create_worker_consumer.makegood_fetch_wait = ms
    create_worker_consumer.makegood_original = original
    thread_class._create_worker_consumer = create_worker_consumer
