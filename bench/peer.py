"""The peer: the entitlement x window join as a Quix Streams user would write it.

One Application, one StreamingDataFrame over entitlement.states.v1 (keyed by entitlement_id),
a stateful apply that keeps each entitlement's latest state in Quix's RocksDB state store
(changelogged, as Quix does by default), newer-wins on updated_at, and decides it against every
known incident with makegood's own processors.entitlements.decide_entitlement; the remedies and
their notices go out with `to_topic`, the topic picked per record. The incidents are read once
at start-up with a plain consumer (every instance needs all of them, as in makegood's
IncidentFeed). Avro in and out through streams.codec, so the bytes are the workers' bytes.

`python -m bench.peer --namespace NS --events N --state-dir DIR` prints one JSON line: seconds
from the first record processed to the N-th, and the process's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import time

from quixstreams import Application, State, message_context
from quixstreams.models.serializers import Deserializer, Serializer
from quixstreams.models.topics.exceptions import TopicNotFoundError

from processors.entitlements import decide_entitlement
from processors.errors import InvalidRecord
from processors.model import EntitlementState, RemedyAction, Source, from_dict
from processors.policy import Policy, load_policy
from processors.validate import validate_entitlement, validate_window
from processors.windows import IncidentHistory
from streams.wire.codec import Codec, DecodeError
from streams.wire.framing import open_codec
from streams.settings import Settings
from streams.kafka.topics import ACTIONS, ENTITLEMENTS, NOTICES, OUTAGES

from .limit import peak_rss_kb


class AvroIn(Deserializer):
    def __init__(self, codec: Codec, schema: str):
        super().__init__()
        self.codec, self.schema = codec, schema

    def __call__(self, value: bytes, ctx) -> dict:
        return self.codec.decode(self.schema, value)


class AvroOut(Serializer):
    def __init__(self, codec: Codec, schema: str):
        self.codec, self.schema = codec, schema

    def __call__(self, value, ctx) -> bytes:
        return self.codec.encode_obj(self.schema, value)


def read_incidents(settings: Settings, codec: Codec, policy: Policy) -> dict[str, IncidentHistory]:
    """Every accepted revision of every incident on the outage topic, read to its end."""
    from confluent_kafka import Consumer, TopicPartition
    topic = settings.topic(OUTAGES)
    c = Consumer(settings.kafka_config(**{"group.id": settings.topic("bench.quix.feed"),
                                          "enable.auto.commit": False}))
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    histories: dict[str, IncidentHistory] = {}
    remaining = {p for p, e in ends.items() if e > 0}
    while remaining:
        m = c.poll(5)
        if m is None:
            break
        if m.error():
            continue
        try:
            w = codec.decode_obj("outage_window", m.value())
            validate_window(w, policy)
            h = histories.get(w.incident_id, IncidentHistory()).accept(w)
            if h is not None:
                histories[w.incident_id] = h
        except (DecodeError, InvalidRecord):
            pass
        if m.offset() + 1 >= ends[m.partition()]:
            remaining.discard(m.partition())
    c.close()
    return histories


def build(settings: Settings, events: int, state_dir: str, clock: dict, timeout: float) -> Application:
    codec = open_codec(settings)   # the workers' framing: registry ids (#14)
    policy = load_policy(str(settings.policy_path))
    histories = read_incidents(settings, codec, policy)

    def processed(topic: str, partition: int, offset: int) -> None:
        clock["n"] += 1
        if clock["n"] == 1:
            clock["first"] = time.monotonic()
        if clock["n"] >= events or (clock["n"] % 1000 == 0 and time.monotonic() - clock["first"] > timeout):
            clock["done"] = time.monotonic()     # all N, or as many as the time allowed
            app.stop()

    security = settings.kafka_security.librdkafka()      # TLS / SASL like every makegood client
    app = Application(broker_address=settings.bootstrap, consumer_group=settings.topic("bench.quix"),
                      consumer_extra_config=security, producer_extra_config=security,
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                      on_message_processed=processed)
    states = app.topic(settings.topic(ENTITLEMENTS), key_deserializer="str",
                       value_deserializer=AvroIn(codec, "entitlement_state"))
    actions = app.topic(settings.topic(ACTIONS), key_serializer="str",
                        value_serializer=AvroOut(codec, "remedy_action"))
    notices = app.topic(settings.topic(NOTICES), key_serializer="str",
                        value_serializer=AvroOut(codec, "user_notice"))
    topic_name = settings.topic(ENTITLEMENTS)

    def remember_and_decide(value: dict, state: State) -> list:
        try:
            ent = from_dict(EntitlementState, value)
            validate_entitlement(ent, policy)
        except InvalidRecord:
            return []
        held = state.get("entitlement")
        if held is not None and held["updated_at"] > ent.updated_at:
            return []                      # a newer state is already stored
        state.set("entitlement", value)
        ctx = message_context()
        source = Source(topic_name, ctx.partition, ctx.offset)
        out: list = []
        for history in histories.values():
            d = decide_entitlement(policy, history, ent, source)
            out.extend(d.remedies)
            out.extend(d.notices)
        return out

    sdf = app.dataframe(states)
    sdf = sdf.apply(remember_and_decide, stateful=True, expand=True)
    sdf.to_topic(lambda value, key, ts, headers: actions if isinstance(value, RemedyAction) else notices,
                 key=lambda value: value.user_id)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--timeout", type=float, default=900, help="stop after this many seconds of processing")
    a = ap.parse_args()
    clock = {"n": 0, "first": None, "done": None}
    settings = Settings.from_env(namespace=a.namespace)
    for attempt in range(3):
        try:
            app = build(settings, a.events, a.state_dir, clock, a.timeout)
            break
        except TopicNotFoundError:
            # Quix creates its changelog topic and reads it back at once; on a loaded broker the
            # new topic's metadata can lag the create, and the next attempt finds it.
            if attempt == 2:
                raise
            time.sleep(2)
    app.run()
    stopped = time.monotonic()
    seconds = (clock["done"] - clock["first"]) if clock["done"] and clock["first"] else None
    print(json.dumps({"events": clock["n"], "seconds": seconds,
                      "seconds_with_shutdown": (stopped - clock["first"]) if clock["first"] else None,
                      "peak_rss_kb": peak_rss_kb()}), flush=True)


if __name__ == "__main__":
    main()
