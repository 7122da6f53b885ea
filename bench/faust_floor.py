"""A reference, not a baseline: how fast a faust agent goes when it does nothing at all.

`python -m bench.faust_floor --namespace NS --events N` runs a faust app whose agent (concurrency
1, take_events batches of 1,000, the settings the reports agent uses) only counts the namespace's
entitlement states. It prints one JSON line: seconds from the first batch to the N-th event.
This is the ceiling of any design that reads entitlement states through a faust agent, and the
reason makegood reads them with a batched librdkafka consumer (streams/states.py).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import faust

from streams.settings import Settings
from streams.kafka.topics import ENTITLEMENTS, topic_profile


def faust_credentials(s: Settings):
    """The makegood client settings (MAKEGOOD_KAFKA_*) as faust credentials: TLS, SASL or none."""
    sec = s.kafka_security
    if sec.sasl:
        kw = sec.aiokafka_kwargs()
        return faust.SASLCredentials(username=kw["sasl_plain_username"], password=kw["sasl_plain_password"],
                                     mechanism=sec.sasl_mechanism, ssl_context=kw.get("ssl_context"))
    if sec.tls:
        return faust.SSLCredentials(sec.ssl_context())
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    a = ap.parse_args()
    s = Settings.from_env(namespace=a.namespace)
    app = faust.App(s.topic("bench.faust-floor"), broker=f"kafka://{s.bootstrap}", store="memory://",
                    broker_credentials=faust_credentials(s), web_enabled=False, datadir=a.state_dir,
                    topic_replication_factor=topic_profile(s.topics_file, s.topic_profile).replication,
                    processing_guarantee="at_least_once", consumer_auto_offset_reset="earliest",
                    broker_commit_every=2000, stream_buffer_maxsize=8192, autodiscover=False)
    topic = app.topic(s.topic(ENTITLEMENTS), key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "t0": None}

    async def count(stream):
        async for events in stream.take_events(1000, within=0.05):
            if seen["t0"] is None:
                seen["t0"] = time.monotonic()
            seen["n"] += len(events)
            if seen["n"] >= a.events:
                print(json.dumps({"events": seen["n"], "seconds": time.monotonic() - seen["t0"]}), flush=True)
                os._exit(0)      # the number is out; faust's orderly shutdown takes seconds

    app.agent(topic, name="count", concurrency=1)(count)
    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
