"""#17, against an implementation that is not ours: Apache Avro's Java library.

A small Java tool (tests/interop/avro-java, built here with Maven from Maven Central the first
time) reads and writes single-object encoding with Avro's own BinaryMessageDecoder and
BinaryMessageEncoder. For every schema in schemas/, Java must decode what makegood writes, and
makegood must decode what Java writes, byte for byte the same as its own encoding. One JVM
answers every request.

No broker or Redis is needed, but Java 17+ (a JDK) and Maven are: without them the test fails
rather than skips, because CI machines have them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import time
from typing import Any, Callable

import pytest

from processors.batch import evaluate
from processors.model import Source, to_dict
from processors.policy import load_policy
from streams.settings import ROOT
from streams.wire.codec import Codec
from tests.integration import kit
from tests.legacy_wire import reversed_header
from tests.samples import sample

TOOL = ROOT / "tests" / "interop" / "avro-java"
MAIN = "dev.makegood.interop.AvroInterop"
SCHEMAS = sorted(p.stem for p in (ROOT / "schemas").glob("*.avsc"))
Answer = tuple[str, str]


def _tool_digest() -> str:
    h = hashlib.sha256()
    for p in sorted([TOOL / "pom.xml", TOOL / "settings.xml", *(TOOL / "src").rglob("*.java")]):
        h.update(p.relative_to(TOOL).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def avro_java() -> Callable[[list[str]], list[Answer]]:
    mvn, java = shutil.which("mvn"), shutil.which("java")
    if not mvn or not java:
        pytest.fail("the Avro interop test needs Java 17+ (a JDK) and Maven 3 on PATH, e.g. "
                    "`apt-get install openjdk-17-jdk-headless maven`; it builds tests/interop/avro-java "
                    "from Maven Central", pytrace=False)
    stamp = TOOL / "target" / "sources.sha256"
    digest = _tool_digest()
    if not stamp.is_file() or stamp.read_text() != digest:
        t0 = time.monotonic()
        done = subprocess.run([mvn, "-q", "-B", "-s", str(TOOL / "settings.xml"), "-f", str(TOOL / "pom.xml"),
                               "package"], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"building {TOOL.relative_to(ROOT)} failed (mvn package):\n"
                        + (done.stdout + done.stderr)[-4000:], pytrace=False)
        stamp.write_text(digest)
        print(f"\nbuilt {TOOL.relative_to(ROOT)} in {time.monotonic() - t0:.0f} s")
    classpath = os.pathsep.join([str(TOOL / "target" / "classes"), str(TOOL / "target" / "libs" / "*")])

    def run(requests: list[str]) -> list[Answer]:
        done = subprocess.run([java, "-cp", classpath, MAIN], input="".join(r + "\n" for r in requests),
                              capture_output=True, text=True, encoding="utf-8", timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
        answers = [tuple(line.split("\t", 1)) for line in done.stdout.splitlines()]
        assert len(answers) == len(requests), done.stdout[-2000:] + done.stderr[-2000:]
        return answers

    return run


@pytest.fixture(scope="module")
def wire() -> Codec:
    return Codec.from_dir(ROOT / "schemas")


# ------------------------------------------------------------------- Avro's JSON encoding

def avro_json(schema: Any, value: Any, names: dict[str, Any] | None = None) -> Any:
    """`value`, as the codec takes it, in Avro's JSON encoding (the spec's "JSON Encoding"):
    what Java's JsonDecoder reads and JsonEncoder writes. Unions are wrapped as {"long": 5}."""
    names = {} if names is None else names
    if isinstance(schema, list):
        if value is None:
            return None
        (branch,) = [b for b in schema if b != "null"]     # makegood's unions: ["null", X]
        return {_branch_name(branch): avro_json(branch, value, names)}
    if isinstance(schema, str):
        if schema in names:
            return avro_json(names[schema], value, names)
        return value.decode("latin-1") if schema == "bytes" else value
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        names[schema["name"]] = schema
    if kind == "record":
        return {f["name"]: avro_json(f["type"], value[f["name"]], names) for f in schema["fields"]}
    if kind == "array":
        return [avro_json(schema["items"], v, names) for v in value]
    if kind == "map":
        return {k: avro_json(schema["values"], v, names) for k, v in value.items()}
    if kind == "fixed":
        return value.decode("latin-1")
    return avro_json(kind, value, names) if kind != "enum" else value


def _branch_name(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    if branch["type"] in ("record", "enum", "fixed"):
        return ".".join(filter(None, [branch.get("namespace"), branch["name"]]))
    return branch["type"]


def _filler(schema: Any) -> Any:
    kind = schema if isinstance(schema, str) else schema["type"]
    return {"string": "채움-\t\"x\"", "int": -7, "long": 2 ** 40 + 3, "bytes": bytes(range(256))}[kind]


def flipped(declared: dict, record: dict) -> dict:
    """`record` with every optional field the other way round: null <-> a value."""
    out = copy.deepcopy(record)
    for f in declared["fields"]:
        if isinstance(f["type"], list) and "null" in f["type"]:
            (branch,) = [b for b in f["type"] if b != "null"]
            out[f["name"]] = _filler(branch) if record[f["name"]] is None else None
    return out


def records() -> list[tuple[str, dict]]:
    """(schema, record) pairs: a sample and its flipped twin of every schema, plus what the
    pipeline's own processors produce for a small incident."""
    out = []
    for name in SCHEMAS:
        declared = json.loads((ROOT / "schemas" / f"{name}.avsc").read_text())
        out += [(name, sample(name)), (name, flipped(declared, sample(name)))]
    src = lambda topic, i: Source(topic, i % 3, i)                            # noqa: E731
    windows = [(w, src("outage.windows.v1", i)) for i, w in enumerate(kit.windows())]
    ents = [(e, src("entitlement.states.v1", i)) for i, e in enumerate(kit.entitlements(40, seed=3))]
    reps = [(r, src("damage.reports.v1", i)) for i, r in enumerate(kit.reports(30, seed=5))]
    result = evaluate(load_policy(str(ROOT / "deploy" / "policies" / "kakao-1015.yaml")), windows, ents, reps)
    for schema, objs in [("outage_window", [w for w, _ in windows]), ("entitlement_state", [e for e, _ in ents]),
                         ("damage_report", [r for r, _ in reps]), ("remedy_action", result.remedies),
                         ("review_case", result.reviews), ("user_notice", result.notices)]:
        assert objs, schema
        out += [(schema, to_dict(o)) for o in objs]
    return out


# ------------------------------------------------------------------- the test

def test_apache_avro_java_and_makegood_read_each_others_records(avro_java, wire):
    path = {name: str(ROOT / "schemas" / f"{name}.avsc") for name in SCHEMAS}
    declared = {name: wire.schema(name).declared for name in SCHEMAS}
    pairs = records()
    assert {name for name, _ in pairs} == set(SCHEMAS)
    ours = [wire.encode(name, rec) for name, rec in pairs]
    pre17 = {name: reversed_header(wire.encode(name, sample(name))) for name in SCHEMAS}

    requests = ([f"fingerprint\t{path[n]}" for n in SCHEMAS]
                + [f"decode\t{path[n]}\t{data.hex()}" for (n, _), data in zip(pairs, ours)]
                + [f"decode\t{path[n]}\t{pre17[n].hex()}" for n in SCHEMAS]
                + [f"encode\t{path[n]}\t{json.dumps(avro_json(declared[n], rec))}" for n, rec in pairs])
    answers = iter(avro_java(requests))

    for name in SCHEMAS:     # Java's own CRC-64-AVRO of its own canonical form
        status, fp = next(answers)
        assert status == "ok" and bytes.fromhex(fp)[::-1] == wire.schema(name).fingerprint, (name, fp)

    failed = []
    for (name, rec), data in zip(pairs, ours):    # makegood wrote, Java reads
        status, text = next(answers)
        if status != "ok" or json.loads(text) != avro_json(declared[name], rec):
            failed.append(f"Java decode {name}: {status} {text[:300]}")

    for name in SCHEMAS:     # the pre-#17 header: what the issue saw (Java cannot read it)
        status, text = next(answers)
        assert status == "error" and "MissingSchemaException" in text, (name, status, text)

    for (name, rec), data in zip(pairs, ours):    # Java wrote, makegood reads
        status, text = next(answers)
        if status != "ok":
            failed.append(f"Java encode {name}: {text[:300]}")
            continue
        java_bytes = bytes.fromhex(text)
        if java_bytes != data:
            failed.append(f"Java's bytes differ from makegood's for {name}:\n {java_bytes.hex()}\n {data.hex()}")
        elif wire.decode(name, java_bytes) != rec:
            failed.append(f"makegood decode of Java's {name} differs")
    assert not failed, f"{len(failed)} of {2 * len(pairs)} failed:\n" + "\n".join(failed[:10])
