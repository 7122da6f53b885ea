"""Expected failures, each said in one line: what is wrong and what to do, then an exit status
or a wait that /readyz shows. No tracebacks and no log floods."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import redis as redis_lib

from processors.batch import evaluate
from processors.policy import load_policy
from streams.settings import ROOT
from tests.integration import kit
from tests.integration.ops.scrape import get, readyz

PORT_LINE = re.compile(r"metrics http://[^\s:]+:(\d+)/metrics")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKEGOOD_")}
    env.update({"PYTHONUNBUFFERED": "1", "MAKEGOOD_METRICS_PORT": "0", **extra})
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_topics_missing_exits_with_the_command_that_fixes_it(stack):
    ns = f"t{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    done = _run(["worker"], _env(MAKEGOOD_NAMESPACE=ns, MAKEGOOD_LOG_FORMAT="json"))
    assert done.returncode != 0
    assert time.monotonic() - started < 60
    lines = _lines(done.stdout + done.stderr)
    docs = [json.loads(line) for line in lines]          # every line is one JSON object
    assert len(docs) == 2, lines                           # the start-up line and the failure
    assert docs[0]["level"] == "INFO" and "starting" in docs[0]["message"]
    assert docs[1]["level"] == "CRITICAL" and "run `makegood topics create`" in docs[1]["message"]
    assert f"{ns}.outage.windows.v1" in docs[1]["message"]
    assert "Traceback" not in done.stderr


def test_an_invalid_policy_is_one_line_naming_file_rule_and_field(stack, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: x\nservices: [melon]\nrules:\n  - id: r1\n    match: {services: [nope]}\n")
    done = _run(["worker"], _env(MAKEGOOD_POLICY=str(bad)))
    assert done.returncode == 1
    lines = _lines(done.stdout + done.stderr)
    assert len(lines) == 1, lines
    assert str(bad) in lines[0] and "'r1'" in lines[0] and "'match'" in lines[0]


def test_a_metrics_port_in_use_is_one_line(stack):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = _run(["worker"], _env(MAKEGOOD_METRICS_HOST="127.0.0.1", MAKEGOOD_METRICS_PORT=str(port)))
    assert done.returncode == 1
    lines = _lines(done.stdout + done.stderr)
    assert len(lines) == 1 and "MAKEGOOD_METRICS_PORT" in lines[0] and str(port) in lines[0], lines


def test_topics_create_with_the_broker_down_is_one_line(stack):
    done = _run(["topics", "create"], _env(MAKEGOOD_BOOTSTRAP="127.0.0.1:1"))
    assert done.returncode == 1
    lines = _lines(done.stdout + done.stderr)
    assert len(lines) == 1 and "cannot reach Kafka at 127.0.0.1:1" in lines[0], lines


def test_a_worker_waits_for_an_unreachable_broker_alive_and_not_ready(stack, tmp_path):
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "worker"],
                                env=_env(MAKEGOOD_BOOTSTRAP="127.0.0.1:1", MAKEGOOD_NAMESPACE="unreachable"),
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not PORT_LINE.search(log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        port = int(PORT_LINE.search(log.read_text()).group(1))
        time.sleep(15)
        assert proc.poll() is None, "the worker exited instead of waiting:\n" + log.read_text()
        assert get(port, "/healthz")[0] == 200
        ready, reasons = readyz(port)
        assert not ready and any("Kafka unreachable at 127.0.0.1:1" in r for r in reasons), reasons
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    lines = _lines(log.read_text())
    assert len(lines) <= 3, lines       # the start-up line, one WARNING (a reminder comes after a minute)
    assert sum("[WARNING]" in line and "Kafka unreachable at 127.0.0.1:1" in line for line in lines) == 1
    assert "Traceback" not in log.read_text()


def _secure(srv, password: str) -> None:
    redis_lib.Redis(host="127.0.0.1", port=srv.port).config_set("requirepass", password)


def _wait_ready(port: int, want: bool, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, reasons = readyz(port)
        if ready == want:
            return reasons
        time.sleep(0.25)
    raise AssertionError(f"/readyz never became {want}: {reasons}")


def test_a_redis_outage_is_not_ready_one_warning_and_nothing_lost(settings, codec, workers, redis_server):
    password = f"pw-{uuid.uuid4().hex}"
    srv = redis_server()
    srv.up(lambda _m: None)
    _secure(srv, password)
    url = f"redis://:{password}@127.0.0.1:{srv.port}/0"
    workers.start(1, env={"MAKEGOOD_REDIS_URL": url})
    port = workers.port(0)
    workers.wait_ready()
    _wait_ready(port, True)

    srv.down(lambda _m: None)
    reasons = _wait_ready(port, False, timeout=30)
    assert any(f"Redis ledger unreachable at 127.0.0.1:{srv.port}" in r for r in reasons), reasons
    pub = kit.Published()
    kit.publish(settings, codec, "entitlement.states.v1", kit.entitlements(200, seed=23), pub)
    kit.publish(settings, codec, "outage.windows.v1", kit.windows(), pub)
    time.sleep(12)
    assert all(workers.alive())
    srv.up(lambda _m: None)
    _secure(srv, password)
    _wait_ready(port, True)

    expected = evaluate(load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml")),
                        pub.windows, pub.entitlements, pub.reports)
    got = kit.settle(settings, codec, len(expected.remedies), workers=workers)
    assert kit.as_rows(codec.decode_obj("remedy_action", m.value()) for m in got) == kit.as_rows(expected.remedies)

    log = workers.log(0)
    outage = log[log.rfind("\n", 0, log.index("Redis ledger unreachable")) + 1:]
    warnings = [line for line in _lines(outage) if "[WARNING]" in line]
    assert len([w for w in warnings if "Redis ledger unreachable" in w]) == 1, warnings
    assert len(warnings) <= 2, warnings             # + at most one step that failed for another reason
    assert len(_lines(outage)) < 25, outage          # not a line every few seconds
    assert sum("reachable again" in line for line in _lines(outage)) == 1
    # the password is nowhere: not in the log, the metrics or the readiness answer
    assert password not in log
    assert password not in get(port, "/metrics")[1] and password not in get(port, "/readyz")[1]
    assert f"redis://:***@127.0.0.1:{srv.port}/0" in log


def test_commands_never_print_the_redis_password(stack):
    password = f"pw-{uuid.uuid4().hex}"
    done = _run(["status", "u1"], _env(MAKEGOOD_REDIS_URL=f"redis://:{password}@127.0.0.1:1/0"))
    assert done.returncode == 1
    lines = _lines(done.stdout + done.stderr)
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0], lines
    assert password not in done.stdout + done.stderr
