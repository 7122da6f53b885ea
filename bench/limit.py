"""The Python limit: consume -> fastavro decode -> encode -> produce, no logic, one process.

`python -m bench.limit --namespace NS --events N --out TOPIC` reads N entitlement states of the
namespace and writes each one back out, with the same codec as the workers (streams.codec) and a
producer configured like the workers' (acks=all, idempotent, 5 ms linger). It prints one JSON line:
the seconds from the first record consumed to the last one acknowledged, and its peak RSS.
"""
from __future__ import annotations

import argparse
import json
import time

from confluent_kafka import Consumer

from streams.wire.framing import open_codec
from streams.settings import Settings
from streams.kafka.topics import ENTITLEMENTS


def peak_rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def run(settings: Settings, events: int, out_topic: str, timeout: float) -> dict:
    from confluent_kafka import Producer
    codec = open_codec(settings)   # the workers' framing: registry ids (#14)
    consumer = Consumer(settings.kafka_config(**{
        "group.id": settings.topic("bench.limit"), "auto.offset.reset": "earliest",
        "enable.auto.commit": True, "fetch.max.bytes": 32 << 20}))
    producer = Producer(settings.kafka_config(**{
        "enable.idempotence": True, "acks": "all", "linger.ms": 5, "batch.size": 256 * 1024,
        "queue.buffering.max.messages": 1_000_000}))
    consumer.subscribe([settings.topic(ENTITLEMENTS)])
    decode, encode = codec.decode, codec.encode
    done = 0
    first = None
    deadline = time.monotonic() + timeout
    while done < events and time.monotonic() < deadline:
        for m in consumer.consume(1000, timeout=0.5):
            if m.error():
                continue
            if first is None:
                first = time.monotonic()
            value = encode("entitlement_state", decode("entitlement_state", m.value()), check=False)
            while True:
                try:
                    producer.produce(out_topic, key=m.key(), value=value)
                    break
                except BufferError:
                    producer.poll(0.01)
            done += 1
        producer.poll(0)
    producer.flush(60)
    end = time.monotonic()
    consumer.close()
    return {"events": done, "seconds": (end - first) if first else None, "peak_rss_kb": peak_rss_kb()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()
    print(json.dumps(run(Settings.from_env(namespace=a.namespace), a.events, a.out, a.timeout)), flush=True)


if __name__ == "__main__":
    main()
