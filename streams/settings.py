"""One settings object, read from the environment in exactly one place (`Settings.from_env`)."""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from streams.errors import ConfigError
from streams.security import KafkaSecurity, RedisSecurity, read_secret, redact
from streams.resources import data_root, default_state_dir, policy_file

# schemas/ and deploy/: the checkout, or the installed wheel's package data (streams/resources.py)
ROOT = data_root()

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6390/0"
# the local stack's registry (streams/dev/registry.py): Apicurio's Confluent-compatible API
DEFAULT_SCHEMA_REGISTRY_URL = "http://127.0.0.1:8081/apis/ccompat/v7"
NO_REGISTRY = ("none", "off")      # MAKEGOOD_SCHEMA_REGISTRY_URL=none: Avro single-object encoding only
DEFAULT_METRICS_PORT = 9400        # production; 0 picks a free port (tests, the demo, several local workers)
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# deploy/topics.yaml `profiles`: replication factor and min.insync.replicas per environment
TOPIC_PROFILES = ("local", "production")
_SECRET_QUERY_KEYS = {"password", "pass", "passwd", "token", "secret"}


def redact_url(url: str) -> str:
    """A URL with its password (and password-like query values) replaced by ***, for logs.

    Never raises and never returns the input unparsed if it might hold a secret: something
    that does not parse as a URL at all is shown only by its scheme."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, hostport = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"***@{hostport}"
        query = parts.query
        if query:
            query = urlencode([(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v)
                               for k, v in parse_qsl(query, keep_blank_values=True)], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return (url.split(":", 1)[0] + "://***") if ":" in url else "***"


def redis_address(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, for one-line messages."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
    except ValueError:
        return redact_url(url)


def _rdkafka_logger() -> logging.Logger:
    log = logging.getLogger("makegood.rdkafka")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


@dataclass(frozen=True)
class Settings:
    root: Path = ROOT
    bootstrap: str = DEFAULT_BOOTSTRAP
    # may hold a password: never printed (repr, logs); use `redis_display` / `redis_address`
    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    policy_path: Path = ROOT / "deploy" / "policies" / "kakao-1015.yaml"
    topics_file: Path = ROOT / "deploy" / "topics.yaml"
    schemas_dir: Path = ROOT / "schemas"
    # Confluent-compatible schema registry: outputs in its framing, inputs in either framing
    # (streams/wire/framing.py). "" = none (single-object encoding, schemas from schemas/ only).
    # May hold credentials: never printed; use `schema_registry_display`.
    schema_registry_url: str = field(default=DEFAULT_SCHEMA_REGISTRY_URL, repr=False)
    # "user:password" for HTTP basic auth, read from MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE
    schema_registry_auth: str = field(default="", repr=False)
    # CA bundle an https:// registry's certificate is checked against (MAKEGOOD_SCHEMA_REGISTRY_CA_FILE)
    schema_registry_ca_file: Path | None = None
    # TLS / SASL of every Kafka client, and Redis ACL user / TLS (streams/security.py): file
    # paths only, the secrets are read when a client is configured
    kafka_security: KafkaSecurity = KafkaSecurity()
    redis_security: RedisSecurity = RedisSecurity()
    # replication factor and min.insync.replicas of created topics (deploy/topics.yaml profiles)
    topic_profile: str = "local"
    # Prefix for every topic, consumer group and Redis key: tests and demos use a fresh one so
    # they never see each other's records.
    namespace: str = ""
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # .stack/ in a checkout, ~/.local/state/makegood (XDG_STATE_HOME) when installed
    state_dir: Path = field(default_factory=default_state_dir)
    # helper processes a worker decides its sweeps in (0: in the worker itself); sweeppool.py
    sweep_processes: int = 0
    # the worker's HTTP endpoint: /metrics, /healthz, /readyz (ops/http.py)
    metrics_host: str = "0.0.0.0"
    metrics_port: int = DEFAULT_METRICS_PORT
    # "text" for people, "json" (one object per line) for log pipelines
    log_format: str = "text"
    # the libraries' own loggers (librdkafka's go through `makegood.rdkafka`)
    library_loglevel: str = "WARNING"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        s = cls()
        values: dict = {}
        if env.get("MAKEGOOD_BOOTSTRAP"):
            values["bootstrap"] = env["MAKEGOOD_BOOTSTRAP"]
        if env.get("MAKEGOOD_REDIS_URL"):
            values["redis_url"] = env["MAKEGOOD_REDIS_URL"]
        if env.get("MAKEGOOD_SCHEMA_REGISTRY_URL"):
            url = env["MAKEGOOD_SCHEMA_REGISTRY_URL"].strip()
            values["schema_registry_url"] = "" if url.lower() in NO_REGISTRY else url.rstrip("/")
        if env.get("MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE"):
            values["schema_registry_auth"] = _secret_file(env, "MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE")
        if env.get("MAKEGOOD_SCHEMA_REGISTRY_CA_FILE"):
            values["schema_registry_ca_file"] = Path(env["MAKEGOOD_SCHEMA_REGISTRY_CA_FILE"].strip())
            if not values["schema_registry_ca_file"].is_file():
                raise ConfigError(f"MAKEGOOD_SCHEMA_REGISTRY_CA_FILE: {values['schema_registry_ca_file']} "
                                  "is not a readable file")
        values["kafka_security"] = KafkaSecurity.from_env(env)
        values["redis_security"] = RedisSecurity.from_env(env)
        if env.get("MAKEGOOD_TOPIC_PROFILE"):
            values["topic_profile"] = _choice(env, "MAKEGOOD_TOPIC_PROFILE", TOPIC_PROFILES, str.lower)
        if env.get("MAKEGOOD_POLICY"):
            values["policy_path"] = _policy(env["MAKEGOOD_POLICY"].strip())
        if env.get("MAKEGOOD_NAMESPACE"):
            values["namespace"] = env["MAKEGOOD_NAMESPACE"]
        values["state_dir"] = (Path(env["MAKEGOOD_STATE_DIR"]) if env.get("MAKEGOOD_STATE_DIR")
                               else default_state_dir(env))
        if env.get("MAKEGOOD_SWEEP_PROCESSES"):
            values["sweep_processes"] = _int(env, "MAKEGOOD_SWEEP_PROCESSES", 0, 64)
        if env.get("MAKEGOOD_WORKER_ID"):
            values["worker_id"] = env["MAKEGOOD_WORKER_ID"]
        if env.get("MAKEGOOD_METRICS_HOST"):
            values["metrics_host"] = env["MAKEGOOD_METRICS_HOST"]
        if env.get("MAKEGOOD_METRICS_PORT"):
            values["metrics_port"] = _int(env, "MAKEGOOD_METRICS_PORT", 0, 65535)
        if env.get("MAKEGOOD_LOG_FORMAT"):
            values["log_format"] = _choice(env, "MAKEGOOD_LOG_FORMAT", LOG_FORMATS, str.lower)
        if env.get("MAKEGOOD_LIBRARY_LOGLEVEL"):
            values["library_loglevel"] = _choice(env, "MAKEGOOD_LIBRARY_LOGLEVEL", LOG_LEVELS, str.upper)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(s, **values)

    @property
    def store_root(self) -> Path:
        """Where this namespace's entitlement stores live: one numbered slot per running worker
        (worker.rocks), `<state dir>/stores/<namespace>`."""
        return self.state_dir / "stores" / (self.namespace or "_")

    @property
    def redis_display(self) -> str:
        """The Redis URL as it may be printed: any password replaced by ***."""
        return redact_url(self.redis_url)

    @property
    def redis_address(self) -> str:
        return redis_address(self.redis_url)

    @property
    def uses_local_kafka(self) -> bool:
        return self.bootstrap == DEFAULT_BOOTSTRAP

    @property
    def uses_local_redis(self) -> bool:
        return self.redis_url == DEFAULT_REDIS_URL

    @property
    def uses_local_registry(self) -> bool:
        return self.schema_registry_url == DEFAULT_SCHEMA_REGISTRY_URL

    @property
    def schema_registry_display(self) -> str:
        """The registry URL as it may be printed (credentials in it replaced by ***), or "none"."""
        return redact_url(self.schema_registry_url) if self.schema_registry_url else "none"

    def schema_registry_config(self) -> dict:
        """confluent-kafka SchemaRegistryClient config; {} when no registry is configured."""
        if not self.schema_registry_url:
            return {}
        conf = {"url": self.schema_registry_url}
        if self.schema_registry_auth:
            conf["basic.auth.user.info"] = self.schema_registry_auth
        if self.schema_registry_ca_file:
            conf["ssl.ca.location"] = str(self.schema_registry_ca_file)
        return conf

    def subject(self, logical_topic: str) -> str:
        """The registry subject of a topic's values: TopicNameStrategy, `<topic>-value`."""
        return f"{self.topic(logical_topic)}-value"

    def topic(self, name: str) -> str:
        """The real topic name of a logical one (`remedy.actions.v1`) under this namespace."""
        return f"{self.namespace}.{name}" if self.namespace else name

    @property
    def reports_group(self) -> str:
        """The consumer group of damage reports and re-triage requests (worker.consumer)."""
        return self.group("reports")

    @property
    def entitlements_group(self) -> str:
        """The consumer group of entitlement states (worker.consumer)."""
        return self.group("entitlements")

    def group(self, name: str) -> str:
        """The real name of one of the workers' consumer groups."""
        return self.topic(f"makegood.{name}")

    def kafka_config(self, **extra: object) -> dict:
        """confluent-kafka client config. librdkafka's own log lines (e.g. retries while a cold
        broker elects its coordinators) go to the `makegood.rdkafka` logger, not to stderr.
        `client.id` is the worker id, so `kafka-consumer-groups --describe` names the worker
        that holds each partition."""
        return {"bootstrap.servers": self.bootstrap, "client.id": self.worker_id,
                "logger": _rdkafka_logger(), **self.kafka_security.librdkafka(), **extra}

    def redis_kwargs(self) -> dict:
        """Keyword arguments for `redis.Redis.from_url(self.redis_url, ...)`: ACL user, password
        (from its file), TLS CA and client certificate."""
        return self.redis_security.client_kwargs(self.redis_url)

    def secrets(self) -> list[str]:
        """Every secret these settings can reach, for `redact` (never for printing)."""
        url_passwords = [urlsplit(u).password for u in (self.redis_url, self.schema_registry_url) if u]
        auth = self.schema_registry_auth.split(":", 1)[1:] if self.schema_registry_auth else []
        return [s for s in (*self.kafka_security.secrets(), *self.redis_security.secrets(),
                            *url_passwords, *auth) if s]

    def redact(self, text: str) -> str:
        """`text` with every secret of these settings (and any URL password) replaced by ***."""
        return redact(text, self.secrets())

    def client_env(self) -> dict[str, str]:
        """The MAKEGOOD_* variables that connect a child process (a worker) the way these
        settings do: addresses and secret *file paths*, never a secret."""
        env = {"MAKEGOOD_BOOTSTRAP": self.bootstrap, "MAKEGOOD_REDIS_URL": self.redis_url,
               "MAKEGOOD_TOPIC_PROFILE": self.topic_profile,
               **self.kafka_security.env(), **self.redis_security.env()}
        if self.schema_registry_ca_file:
            env["MAKEGOOD_SCHEMA_REGISTRY_CA_FILE"] = str(self.schema_registry_ca_file)
        return env

    def producer_config(self, **extra: object) -> dict:
        """kafka_config for producers. murmur2 is the Java clients' (and Kafka's) partitioner, so
        a key lands on the same partition whichever tool writes it: workers, replays, publishers."""
        return self.kafka_config(**{"partitioner": "murmur2_random", **extra})

    @property
    def redis_prefix(self) -> str:
        return f"mg:{self.namespace}:" if self.namespace else "mg:"


def _int(env: dict[str, str], name: str, low: int, high: int) -> int:
    text = env[name].strip()
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside [{low}, {high}]")
    return value


def _policy(value: str) -> Path:
    """MAKEGOOD_POLICY: a path to a policy file, or the name of one that ships with makegood
    (`whatif-5day`), which an installed package keeps where only it knows."""
    path = Path(value)
    if path.suffix in (".yaml", ".yml") or "/" in value or path.exists():
        return path
    return policy_file(value)


def _secret_file(env: dict[str, str], name: str) -> str:
    """The first line of the file a `..._FILE` variable names; the value itself is never shown."""
    return read_secret(Path(env[name].strip()), name)


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...], norm) -> str:
    value = norm(env[name].strip())
    if value not in allowed:
        raise ConfigError(f"{name}={env[name]!r} is not one of {', '.join(allowed)}")
    return value
