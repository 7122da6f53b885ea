"""The wheel, installed the way a user installs it: built from a copy of this tree, installed
with pip into a fresh venv in a temp dir outside the repo, and run from another directory
outside it. `makegood demo --scale 0.2` there runs real workers of the installed package on the
local stack and compares every remedy, review case and notice with the batch evaluator; its
state (demo folder, report) must land in the per-user state dir, never in site-packages.

One build and one install per run (module fixture), then checks against them. The install
fetches the dependencies through pip (its cache from `make setup` makes that quick)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from streams import resources
from streams.settings import Settings
from streams.kafka.topics import delete_namespace
from tests.integration.conftest import delete_redis_keys

REPO = Path(__file__).resolve().parents[2]
# never copied into the build: state, venvs, build output, VCS
SKIP = shutil.ignore_patterns(".git", ".venv", ".stack", "build", "dist", "target", "__pycache__",
                              "*.egg-info", ".pytest_cache", ".hypothesis", "work", "results")


def _run(argv: list, *, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv[:3]} exit {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _isolation() -> list[str]:
    """--no-build-isolation when this venv has build-system.requires (the dev extra): no
    isolated build env to set up, 30 s here; pip's default otherwise."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        ok = int(version("setuptools").split(".")[0]) >= 68 and version("wheel")
    except PackageNotFoundError:
        ok = False
    return ["--no-build-isolation"] if ok else []


@pytest.fixture(scope="module")
def install(tmp_path_factory, stack):
    top = tmp_path_factory.mktemp("install")
    assert REPO not in top.parents
    t0 = time.monotonic()
    src = top / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    # decoys a careless package would pick up: a key and build output next to shipped files,
    # local state, and the tests (tests/ itself is copied above)
    (src / "deploy" / "registry" / "client.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n")
    (src / "deploy" / "kafka" / "target" / "libs").mkdir(parents=True)
    (src / "deploy" / "kafka" / "target" / "libs" / "kafka.jar").write_bytes(b"PK")
    (src / ".stack").mkdir()
    (src / ".stack" / "redis.pid").write_text("1")
    dist = top / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *_isolation(), "-w", dist, src], cwd=top)
    (wheel,) = dist.glob("makegood-*.whl")
    built = time.monotonic() - t0
    venv = top / "venv"
    # a venv without its own pip (ensurepip alone took 30 s here); this pip installs into it
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=top)
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
          "--disable-pip-version-check", wheel], cwd=top)
    installed = time.monotonic() - t0 - built
    run = top / "elsewhere"
    run.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MAKEGOOD_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", XDG_STATE_HOME=str(top / "state"),
               MAKEGOOD_BOOTSTRAP=stack.bootstrap, MAKEGOOD_REDIS_URL=stack.redis_url)
    if stack.schema_registry_url != Settings().schema_registry_url:
        env["MAKEGOOD_SCHEMA_REGISTRY_URL"] = stack.schema_registry_url or "none"
    print(f"\nwheel built in {built:.1f} s, installed into a fresh venv in {installed:.1f} s")
    return {"top": top, "wheel": wheel, "venv": venv, "run": run, "env": env, "state": top / "state" / "makegood"}


def test_the_wheel_holds_the_code_and_the_runtime_files_only(install):
    names = set(zipfile.ZipFile(install["wheel"]).namelist())
    code = {str(p.relative_to(REPO)) for pkg in ("streams", "processors") for p in (REPO / pkg).rglob("*.py")}
    code |= {str(p.relative_to(REPO)) for p in (REPO / "processors" / "templates").glob("*.yaml")}   # notice wording
    data = {f"streams/{resources.PACKAGE_DATA}/{p}" for p in resources.shipped_files(REPO)}
    meta = {n for n in names if n.startswith("makegood-0.1.0.dist-info/")}
    assert names - meta == code | data
    assert {"schemas/remedy_action.avsc", "schemas/history/user_notice.1.avsc", "deploy/topics.yaml", "deploy/acls.yaml", "deploy/policies/kakao-1015.yaml",
            "deploy/kafka/pom.xml", "deploy/registry/pom.xml"} <= {n.split("/", 2)[2] for n in data}
    assert not [n for n in names if re.search(r"(^|/)(tests?|\.stack|target|bench)/|\.(key|pem|jar|pid)$", n)]
    entry = zipfile.ZipFile(install["wheel"]).read("makegood-0.1.0.dist-info/entry_points.txt").decode()
    assert "makegood = streams.cli.main:main" in entry


def test_the_installed_package_reads_its_own_files_and_keeps_state_outside_it(install):
    probe = ("import json, streams.resources as r; from streams.settings import Settings; s = Settings.from_env(); "
             "print(json.dumps([str(r.data_root()), str(s.state_dir), str(s.schemas_dir), str(s.policy_path), "
             "str(Settings.from_env(env={'MAKEGOOD_POLICY': 'whatif-5day'}).policy_path)]))")
    out = _run([install["venv"] / "bin" / "python", "-c", probe], cwd=install["run"], env=install["env"]).stdout
    import json
    data, state, schemas, policy, named = map(Path, json.loads(out))
    site = install["venv"] / "lib"
    assert site in data.parents and data.name == "_data"
    assert state == install["state"]
    assert schemas == data / "schemas" and policy == data / "deploy" / "policies" / "kakao-1015.yaml"
    assert named.name == "whatif-5day.yaml" and named.is_file()


def test_makegood_demo_from_the_installed_package_matches_the_batch_evaluator(install):
    ns = f"t{uuid.uuid4().hex[:10]}"
    env = dict(install["env"], MAKEGOOD_NAMESPACE=ns)
    site_before = sorted(str(p) for p in install["venv"].rglob("*") if "__pycache__" not in p.parts)
    t0 = time.monotonic()
    try:
        done = _run(["makegood", "demo", "--scale", "0.2"], cwd=install["run"], env=env, timeout=900)
    finally:
        s = Settings.from_env(namespace=ns)
        delete_namespace(s)
        delete_redis_keys(s)
    print(f"installed `makegood demo --scale 0.2` in {time.monotonic() - t0:.1f} s")
    out = done.stdout
    assert f"namespace {ns}" in out
    m = re.search(r"matches the batch evaluator: ([\d,]+) remedies, ([\d,]+) review cases, ([\d,]+) notices", out)
    assert m, out[-3000:]
    assert int(m.group(1).replace(",", "")) > 0 and int(m.group(3).replace(",", "")) > 0
    # the workers were the installed package's: their logs and the report are in its state dir
    rundir = install["state"] / "demo" / ns
    assert (rundir / "report.html").is_file() and list(rundir.glob("worker-*.log"))
    assert str(rundir / "report.html") in out
    # nothing written into site-packages or the directory it ran from
    site_after = sorted(str(p) for p in install["venv"].rglob("*") if "__pycache__" not in p.parts)
    assert site_after == site_before
    assert not any(install["run"].iterdir())


@pytest.mark.skipif(not shutil.which("mvn") or not shutil.which("java"), reason="needs Java and Maven")
def test_the_installed_dev_stack_fetches_the_broker_jars_into_its_state_dir(install):
    """`makegood dev up` from an install starts Kafka from jars Maven fetches with the shipped
    pom.xml, built in a copy under the state dir. (The broker itself is not started: the
    shared one holds the port.)"""
    code = ("from streams.settings import Settings; from streams.dev.stack import LocalKafka; "
            "k = LocalKafka(Settings.from_env()); k.ensure_jars(print); print(k.libs)")
    out = _run([install["venv"] / "bin" / "python", "-c", code], cwd=install["run"], env=install["env"]).stdout
    libs = Path(out.strip().splitlines()[-1])
    assert libs == install["state"] / "build" / "kafka" / "target" / "libs"
    assert list(libs.glob("kafka_2.13-*.jar")) and list(libs.glob("slf4j-reload4j-*.jar"))
