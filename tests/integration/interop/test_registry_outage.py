"""#14: a schema registry outage is waited out, never a dead letter, and never freezes a worker.

The worker reaches the registry through a TCP relay on loopback that the test closes and opens
again: to the worker that is a registry that stops answering (connection refused) and comes
back. While it is away, records whose schema id the worker has never resolved wait: /healthz
still answers, /readyz says why the worker is not ready, nothing becomes a dead letter; once it
is back they are decided exactly as the batch evaluator says.
"""
from __future__ import annotations

import json
import socket
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from processors.batch import evaluate
from processors.model import Source, to_dict
from processors.policy import load_policy
from streams.settings import ROOT
from tests.integration import kit
from tests.integration.conftest import read_topic
from tests.integration.interop.test_registry import OPTIONAL, _with_field
from tests.integration.ops.scrape import get, readyz

ENTS, WINDOWS = "entitlement.states.v1", "outage.windows.v1"


class Relay:
    """Forwards loopback connections on a port of its own to the registry; `close()` refuses
    new connections and cuts open ones, `open()` listens again on the same port."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self.open()

    def open(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            try:        # wakes the thread blocked in accept(): close() alone would not
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


@pytest.fixture
def relay(settings):
    url = settings.schema_registry_config()["url"]
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    r = Relay((host, int(port)))
    yield r
    r.close()


def test_records_wait_out_a_registry_outage_and_are_decided_after_it(settings, codec, relay, tmp_path):
    policy = load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml"))
    conf = settings.schema_registry_config()
    client = SchemaRegistryClient(conf)
    ctx = SerializationContext(settings.topic(ENTS), MessageField.VALUE)
    # a platform service on a newer, compatible EntitlementState: an id the worker has not seen
    newer = AvroSerializer(client, json.dumps(_with_field("entitlement_state", OPTIONAL)))
    url = conf["url"].replace(f":{relay.target[1]}", f":{relay.port}", 1)     # through the relay
    workers = kit.Workers(settings, tmp_path)
    try:
        workers.start(1, env={"MAKEGOOD_SCHEMA_REGISTRY_URL": url})
        workers.wait_ready()
        port = workers.port(0)
        pub = kit.Published()
        kit.publish(settings, codec, WINDOWS, kit.windows(), pub)
        ents = kit.entitlements(40, seed=21)
        values = [newer(dict(to_dict(e), campaign="x"), ctx) for e in ents]
        relay.close()                              # the registry goes away
        p = Producer({"bootstrap.servers": settings.bootstrap, "enable.idempotence": True})
        for e, v in zip(ents, values):
            p.produce(settings.topic(ENTS), key=e.entitlement_id.encode(), value=v,
                      on_delivery=lambda err, msg, e=e: pub.add(ENTS, e, Source(msg.topic(), msg.partition(),
                                                                                 msg.offset())))
        assert p.flush(30) == 0
        deadline = time.monotonic() + 60
        reasons: list[str] = []
        while time.monotonic() < deadline:
            ready, reasons = readyz(port)
            if any("schema registry" in r for r in reasons):
                break
            time.sleep(0.5)
        assert any("schema registry" in r for r in reasons), reasons
        assert get(port, "/healthz")[0] == 200          # the event loop is not held by the wait
        assert read_topic(settings, "remedy.deadletter.v1", idle=1.0, timeout=5) == []
        relay.open()                               # the registry is back
        expected = evaluate(policy, pub.windows, pub.entitlements, pub.reports).remedies
        assert expected
        msgs = kit.settle(settings, codec, len(expected), workers=workers)
        got = [codec.decode_obj("remedy_action", m.value()) for m in msgs]
        assert kit.as_rows(got) == kit.as_rows(expected)
        assert read_topic(settings, "remedy.deadletter.v1", idle=1.0, timeout=5) == []
        assert all(workers.alive()) and "waits for the schema registry" in workers.logs()
    finally:
        workers.stop()
