"""The local stack: a real Kafka broker (KRaft, one node), a real Redis server and a schema
registry (streams/dev/registry.py) on loopback.

Both run as detached processes whose pid files, data and logs live under `.stack/`, so `down`
stops only what `up` started and a second `up` finds them running.
"""
from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

from streams.dev.procs import ServiceStatus, _alive, _kill, _port_open, _read_pid, _spawn, _stop, _tail, _wait
from streams.dev.registry import LocalRegistry
from streams.dev.secure import LocalSecurity, secure_up
from streams.resources import maven_project, sync_maven_project
from streams.settings import Settings
from streams.errors import StackError

KAFKA_PORT = 9092
CONTROLLER_PORT = 9093
SECURE_PORT = 9094         # SASL_SSL, ACLs enforced (streams/dev/secure.py)
MTLS_PORT = 9095           # SSL with client certificates, the same ACLs
REDIS_PORT = 6390
LOAD_TIMEOUT_S = 600       # how long a started Redis may take to read its AOF back


# --------------------------------------------------------------------------------------- Kafka

class LocalKafka:
    """A single-node KRaft broker on loopback. `makegood dev up` runs the one on ports 9092/9093
    under .stack/kafka; a fault test runs a private one (its own free ports and home, `tied` to
    the test process) that it can kill -9 and start again on the same data. `settings.bootstrap`
    names the broker clients use: this one when it is 127.0.0.1:<port>, else an external one.
    `secure_port` is a SASL_SSL listener whose clients the roles' ACLs bind (streams/dev/secure.py):
    9094 for the dev stack's broker, none for a private one unless asked; the PLAINTEXT port stays
    open to everything on loopback."""

    def __init__(self, settings: Settings, *, port: int = KAFKA_PORT, controller_port: int = CONTROLLER_PORT,
                 secure_port: int | None = None, mtls_port: int | None = None, home: Path | None = None,
                 tied: bool = False):
        self.settings = settings
        self.port = port
        self.controller_port = controller_port
        self.secure_port = secure_port or (SECURE_PORT if port == KAFKA_PORT else None)
        self.mtls_port = mtls_port or (MTLS_PORT if port == KAFKA_PORT else None)
        if (self.secure_port is None) != (self.mtls_port is None):
            raise StackError("kafka: the secured listeners come together: give secure_port and mtls_port")
        self.tied = tied
        self.home = home or settings.state_dir / "kafka"
        # deploy/kafka/ in a checkout; a copy under the state dir for an installed package
        self.project = maven_project("kafka", settings.state_dir)
        self.pom = self.project / "pom.xml"
        self.libs = self.project / "target" / "libs"
        self.pid_file = self.home / "kafka.pid"
        self.log = self.home / "kafka.out"
        self.security = LocalSecurity(self.home, self._role_users()) if self.secure_port else None

    def _role_users(self) -> list[str]:
        from streams.kafka.acls import default_roles_file, load_roles
        return [r.user for r in load_roles(default_roles_file(self.settings)).values()]

    def client(self, user: str, mechanism: str = "SCRAM-SHA-512") -> Settings:
        """Settings that connect to the SASL_SSL listener as `user` (a role's user, or the admin)."""
        if self.security is None:
            raise StackError("kafka: this broker has no secured listener")
        return self.security.client(self.settings, user, self.secure_port, mechanism)

    def mtls_client(self, user: str) -> Settings:
        """Settings that connect to the SSL listener with `user`'s client certificate."""
        if self.security is None:
            raise StackError("kafka: this broker has no secured listener")
        return self.security.mtls_client(self.settings, user, self.mtls_port)

    def ensure_jars(self, say: Callable[[str], None]) -> None:
        sync_maven_project("kafka", self.settings.state_dir)
        if any(self.libs.glob("kafka_2.13-*.jar")) and any(self.libs.glob("slf4j-reload4j-*.jar")):
            return
        mvn = shutil.which("mvn")
        if not shutil.which("java") or not mvn:
            raise StackError("Kafka needs Java 17+ and Maven: install them (apt-get install "
                             "openjdk-17-jre-headless maven) or point MAKEGOOD_BOOTSTRAP at a broker")
        say("kafka: fetching broker jars from Maven Central (first run only, about a minute)")
        t0 = time.monotonic()
        done = subprocess.run([mvn, "-q", "-B", "-f", str(self.pom), "dependency:copy-dependencies"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError("kafka: maven could not fetch the broker jars:\n"
                             + (done.stdout + done.stderr)[-3000:])
        say(f"kafka: jars ready in {time.monotonic() - t0:.0f} s")

    def _write_config(self) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        secure = [] if self.security is None else [f"SASL_SSL://127.0.0.1:{self.secure_port}",
                                                   f"SSL://127.0.0.1:{self.mtls_port}"]
        if self.security is not None:
            self.security.ensure()
        props.touch(mode=0o600, exist_ok=True)
        os.chmod(props, 0o600)       # with a secured listener it holds the keystore password
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            ",".join([f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
                      f"CONTROLLER://127.0.0.1:{self.controller_port}", *secure]),
            ",".join([f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}", *secure]),
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            f"log.dirs={data}",
            "num.partitions=1",
            "auto.create.topics.enable=false",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "log.cleaner.backoff.ms=5000",
            *(self.security.server_properties(self.secure_port) if self.security else ()),
            "",
        ]))
        log4j = self.home / "log4j.properties"
        log4j.write_text("\n".join([
            "log4j.rootLogger=INFO, file",
            "log4j.appender.file=org.apache.log4j.RollingFileAppender",
            f"log4j.appender.file.File={self.home / 'server.log'}",
            "log4j.appender.file.MaxFileSize=20MB",
            "log4j.appender.file.MaxBackupIndex=2",
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout",
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n",
            "log4j.logger.kafka=INFO",
            "log4j.logger.org.apache.kafka=INFO",
            "log4j.logger.state.change.logger=WARN",
            "log4j.logger.kafka.log.LogCleaner=WARN",
            "",
        ]))
        return props

    def _java(self, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
        return ["java", heap, f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
                "-cp", f"{self.libs}/*", main, *args]

    def answers(self, timeout: float = 3.0) -> bool:
        from confluent_kafka.admin import AdminClient
        try:
            admin = AdminClient(self.settings.kafka_config())
            admin.list_topics(timeout=timeout)
            return True
        except Exception:
            return False

    @property
    def local(self) -> bool:
        """Whether clients (settings.bootstrap) use this broker rather than an external one."""
        return self.settings.bootstrap == f"127.0.0.1:{self.port}"

    def status(self) -> ServiceStatus:
        pid = _read_pid(self.pid_file)
        running = _alive(pid)
        answers = self.answers(2.0)
        note = ("external (MAKEGOOD_BOOTSTRAP)" if not self.local
                else "not started by this checkout" if answers and not running else "")
        return ServiceStatus("kafka", running, pid if running else None, self.settings.bootstrap, answers, note)

    def up(self, say: Callable[[str], None]) -> None:
        if not self.local:
            if not self.answers(10.0):
                raise StackError(f"kafka: MAKEGOOD_BOOTSTRAP={self.settings.bootstrap} does not answer")
            say(f"kafka: using external broker {self.settings.bootstrap}")
            return
        pid = _read_pid(self.pid_file)
        if _alive(pid) and self.answers():
            say(f"kafka: already running (pid {pid}, 127.0.0.1:{self.port})")
            if self.secured:
                secure_up(self.settings, self.security, self.secure_port, self.mtls_port, say)
            return
        if not _alive(pid) and _port_open(self.port):
            if self.answers():
                say(f"kafka: a broker not started by makegood already answers on 127.0.0.1:{self.port}; using it")
                return
            raise StackError(f"kafka: port {self.port} is taken by something that is not a Kafka broker")
        self.ensure_jars(say)
        t0 = time.monotonic()
        props = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            cluster_id = "-"
            while cluster_id.startswith("-"):   # the storage tool would read "-..." as an option
                cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            fmt = subprocess.run(self._java("kafka.tools.StorageTool", "format", "-t", cluster_id,
                                            "-c", str(props)), capture_output=True, text=True)
            if fmt.returncode != 0:
                raise StackError("kafka: formatting storage failed:\n" + (fmt.stdout + fmt.stderr)[-2000:])
            say(f"kafka: formatted storage (cluster {cluster_id})")
        if not _alive(pid):
            pid = _spawn(self._java("kafka.Kafka", str(props), heap="-Xmx1g"), self.log, self.home, self.tied)
            self.pid_file.write_text(str(pid))
        if not _wait(self.answers, 90, lambda: _alive(pid)):
            raise StackError("kafka: the broker did not come up. Last lines of its log:\n"
                             + _tail(self.home / "server.log") + "\n" + _tail(self.log, 10))
        say(f"kafka: up (pid {pid}, 127.0.0.1:{self.port}) in {time.monotonic() - t0:.1f} s")
        if self.security is not None:
            secure_up(self.settings, self.security, self.secure_port, self.mtls_port, say)

    @property
    def secured(self) -> bool:
        """Whether this broker's SASL_SSL listener is configured and open."""
        return (self.security is not None and self.security.ca.exists()
                and _port_open(self.secure_port))

    def down(self, say: Callable[[str], None]) -> None:
        _stop(self.pid_file, "kafka", 60, say)

    def kill(self) -> int | None:
        """kill -9 the broker (fault tests); `up` restarts it on the same data."""
        return _kill(self.pid_file)


# --------------------------------------------------------------------------------------- Redis

def find_redis_server() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.path.exists(p)), None)


def install_redis(say: Callable[[str], None]) -> str:
    """Install Debian's redis-server when we can (root with apt-get); otherwise say what to do."""
    exe = find_redis_server()
    if exe:
        return exe
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError("redis-server is not installed: run `sudo apt-get install redis-server` "
                         "(or point MAKEGOOD_REDIS_URL at a Redis server)")
    say("redis: installing Debian's redis-server (first run only)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"]):
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise StackError(f"redis: `{' '.join(argv)}` failed:\n{(done.stdout + done.stderr)[-2000:]}")
    exe = find_redis_server()
    if not exe:
        raise StackError("redis: apt-get finished but redis-server is still not on PATH")
    return exe


def _megabytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.glob("*") if f.is_file()) // 1_000_000


class RedisServer:
    """A redis-server with AOF persistence in its own folder; the dev stack and tests use it.

    `server_args` adds redis-server options (an ACL file, a TLS port: `--port 0 --tls-port P`);
    `client` is what `answers` connects with then (redis.Redis keyword arguments)."""

    def __init__(self, home: Path, port: int, tied: bool = False, *, server_args: tuple[str, ...] = (),
                 client: dict | None = None):
        self.home = home
        self.port = port
        self.tied = tied        # a test's private server: dies with the test process (_spawn)
        self.server_args = server_args
        self.client = client or {}
        self.pid_file = home / "redis.pid"
        self.log = home / "redis.log"

    def answers(self) -> bool:
        return self.state() == "up"

    def state(self) -> str:
        """"up"; "loading" (it is reading its append-only file back and answers every command
        with LOADING until it has); or "down"."""
        import redis
        try:
            redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, **self.client).ping()
            return "up"
        except redis.exceptions.BusyLoadingError:
            return "loading"
        except Exception:
            return "down"

    def status(self) -> ServiceStatus:
        pid = _read_pid(self.pid_file)
        running = _alive(pid)
        answers = self.answers()
        return ServiceStatus("redis", running, pid if running else None, f"127.0.0.1:{self.port}", answers,
                             "not started by this checkout" if answers and not running else "")

    def up(self, say: Callable[[str], None]) -> None:
        pid = _read_pid(self.pid_file)
        if _alive(pid) and self.answers():
            say(f"redis: already running (pid {pid}, 127.0.0.1:{self.port})")
            return
        if not _alive(pid) and _port_open(self.port):
            if self.answers():
                say(f"redis: a server not started by makegood already answers on 127.0.0.1:{self.port}; using it")
                return
            raise StackError(f"redis: port {self.port} is taken by something that is not a Redis server")
        exe = install_redis(say)
        t0 = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        # AOF rewrites only past 1 GB: with Redis's default (each time the AOF doubles, from
        # 64 MB) a 1M-entitlement run forked and rewrote the whole ledger 27 times, on the same
        # two cores as the broker and the workers, and the sweep of 1M took 67.9 s instead of
        # 46.4 s (bench phase sweep1p). A production ledger's Redis has its own machine and its
        # own tuning; this is the local stack's.
        argv = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.home),
                "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
                "--auto-aof-rewrite-min-size", "1gb",
                "--daemonize", "no", "--protected-mode", "yes", "--logfile", str(self.log), *self.server_args]
        pid = _spawn(argv, self.home / "redis.out", self.home, self.tied)
        self.pid_file.write_text(str(pid))
        started = _wait(lambda: self.state() != "down", 20, lambda: _alive(pid))
        if started and self.state() == "loading":
            # a ledger of a million entitlements is about 1 GB of AOF: reading it back takes
            # longer than starting does, and the server says so rather than being down
            say(f"redis: loading its data ({_megabytes(self.home / 'appendonlydir')} MB of AOF) ...")
            started = _wait(self.answers, LOAD_TIMEOUT_S, lambda: _alive(pid))
        if not started:
            raise StackError("redis: the server did not answer PING. Last lines of its log:\n"
                             + _tail(self.log) + "\n" + _tail(self.home / "redis.out", 10))
        say(f"redis: up (pid {pid}, 127.0.0.1:{self.port}, AOF on) in {time.monotonic() - t0:.1f} s")

    def down(self, say: Callable[[str], None]) -> None:
        # SIGTERM makes redis fsync the AOF before it exits: the ledger survives.
        _stop(self.pid_file, "redis", 20, say)

    def kill(self) -> int | None:
        """kill -9 the server (fault tests); `up` restarts it from its AOF."""
        return _kill(self.pid_file)


class LocalRedis(RedisServer):
    def __init__(self, settings: Settings):
        super().__init__(settings.state_dir / "redis", REDIS_PORT)
        self.settings = settings

    def up(self, say: Callable[[str], None]) -> None:
        if not self.settings.uses_local_redis:
            import redis
            try:
                redis.Redis.from_url(self.settings.redis_url, **self.settings.redis_kwargs(), socket_timeout=5).ping()
            except Exception as exc:
                raise StackError(f"redis: {self.settings.redis_address} (MAKEGOOD_REDIS_URL) does not answer PING "
                                 f"({self.settings.redact(str(exc))})") from None
            say("redis: using external server (MAKEGOOD_REDIS_URL)")
            return
        super().up(say)


# --------------------------------------------------------------------------------------- stack

def stack_up(settings: Settings, say: Callable[[str], None] = print) -> None:
    LocalRedis(settings).up(say)
    LocalKafka(settings).up(say)
    LocalRegistry(settings).up(say)


def stack_down(settings: Settings, say: Callable[[str], None] = print) -> None:
    LocalRegistry(settings).down(say)
    LocalKafka(settings).down(say)
    LocalRedis(settings).down(say)


def stack_status(settings: Settings) -> list[ServiceStatus]:
    return [LocalKafka(settings).status(), LocalRedis(settings).status(), LocalRegistry(settings).status()]
