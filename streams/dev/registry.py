"""The local stack's schema registry: Apicurio Registry 2.4.2 (Confluent-compatible API at
/apis/ccompat/v7) on 127.0.0.1:8081, built from Maven Central on the first `dev up`
(deploy/registry/pom.xml) and run from its runner jar with an H2 file database under
`.stack/registry/`, so schema ids survive a restart (records on the topics name them).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from typing import Callable

from streams.dev.procs import ServiceStatus, _alive, _port_open, _read_pid, _stop, _tail, _wait
from streams.errors import StackError
from streams.resources import maven_project, sync_maven_project
from streams.settings import Settings

REGISTRY_PORT = 8081
RUNNER = "makegood-registry-app-1.0.0-runner.jar"


class LocalRegistry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = settings.state_dir / "registry"
        # deploy/registry/ in a checkout; a copy under the state dir for an installed package
        self.project = maven_project("registry", settings.state_dir)
        self.jar = self.project / "app" / "target" / RUNNER
        self.pid_file = self.home / "registry.pid"
        self.log = self.home / "registry.out"

    def ensure_built(self, say: Callable[[str], None]) -> None:
        sync_maven_project("registry", self.settings.state_dir)
        if self.jar.exists() and (self.jar.parent / "lib").is_dir():
            return
        mvn = shutil.which("mvn")
        if not shutil.which("java") or not mvn:
            raise StackError("the schema registry needs Java 17+ and Maven: install them, or point "
                             "MAKEGOOD_SCHEMA_REGISTRY_URL at a registry (or set it to `none`)")
        say("registry: building Apicurio Registry from Maven Central (first run only, about a minute)")
        t0 = time.monotonic()
        done = subprocess.run([mvn, "-q", "-B", "-s", str(self.project / "settings.xml"),
                               "-f", str(self.project / "pom.xml"), "-Dmaven.test.skip=true", "package"],
                              capture_output=True, text=True)
        if done.returncode != 0 or not self.jar.exists():
            raise StackError("registry: the maven build failed:\n" + (done.stdout + done.stderr)[-3000:])
        say(f"registry: built in {time.monotonic() - t0:.0f} s")

    def answers(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{REGISTRY_PORT}/health/ready", timeout=timeout) as r:
                return r.status == 200
        except Exception:
            return False

    def _argv(self) -> list[str]:
        # BACKWARD as the global default too; makegood also sets it per subject (the global
        # setting is not reported by GET /config on this registry, so do not rely on it alone).
        return ["java", "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC",
                "-Dregistry.rules.global.compatibility=BACKWARD", "-jar", str(self.jar)]

    def _env(self) -> dict[str, str]:
        db = self.home / "db" / "registry"
        return dict(os.environ, QUARKUS_HTTP_HOST="127.0.0.1", HTTP_PORT=str(REGISTRY_PORT),
                    REGISTRY_DATASOURCE_URL=f"jdbc:h2:file:{db}",
                    # never ENABLE_CCOMPAT_CANONICAL_HASH_MODE: schemas by id would come back reordered
                    LOG_LEVEL="WARN", REGISTRY_LOG_LEVEL="WARN")

    def status(self) -> ServiceStatus:
        pid = _read_pid(self.pid_file)
        running = _alive(pid)
        if not self.settings.schema_registry_url:
            return ServiceStatus("registry", running, pid if running else None, "none", False,
                                 "MAKEGOOD_SCHEMA_REGISTRY_URL=none: single-object encoding")
        if not self.settings.uses_local_registry:
            return ServiceStatus("registry", running, pid if running else None,
                                 self.settings.schema_registry_display, True, "external (MAKEGOOD_SCHEMA_REGISTRY_URL)")
        answers = self.answers()
        return ServiceStatus("registry", running, pid if running else None, f"127.0.0.1:{REGISTRY_PORT}", answers,
                             "not started by this checkout" if answers and not running else "")

    def up(self, say: Callable[[str], None]) -> None:
        if not self.settings.schema_registry_url:
            say("registry: none (MAKEGOOD_SCHEMA_REGISTRY_URL=none)")
            return
        if not self.settings.uses_local_registry:
            say(f"registry: using external registry {self.settings.schema_registry_display}")
            return
        pid = _read_pid(self.pid_file)
        if _alive(pid) and self.answers():
            say(f"registry: already running (pid {pid}, 127.0.0.1:{REGISTRY_PORT})")
            return
        if not _alive(pid) and _port_open(REGISTRY_PORT):
            if self.answers():
                say(f"registry: a registry not started by makegood already answers on 127.0.0.1:{REGISTRY_PORT}; using it")
                return
            raise StackError(f"registry: port {REGISTRY_PORT} is taken by something that is not a schema registry")
        self.ensure_built(say)
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        if not _alive(pid):
            with open(self.log, "ab") as out:
                proc = subprocess.Popen(self._argv(), stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.home, env=self._env(),
                                        start_new_session=True)
            pid = proc.pid
            self.pid_file.write_text(str(pid))
        if not _wait(self.answers, 90, lambda: _alive(pid)):
            raise StackError("registry: it did not become ready. Last lines of its log:\n" + _tail(self.log))
        say(f"registry: up (pid {pid}, 127.0.0.1:{REGISTRY_PORT}, storage {self.home / 'db'}) "
            f"in {time.monotonic() - t0:.1f} s")

    def down(self, say: Callable[[str], None]) -> None:
        _stop(self.pid_file, "registry", 20, say)

