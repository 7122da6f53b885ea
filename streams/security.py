"""How makegood's clients prove who they are to Kafka and Redis, and how secrets stay unprinted.

Kafka (every librdkafka producer, consumer and admin client takes `Settings.kafka_config()`,
which carries `KafkaSecurity.librdkafka()`; the faust and aiokafka peers of the benchmarks take
`aiokafka_kwargs()`):

    MAKEGOOD_KAFKA_SECURITY_PROTOCOL     PLAINTEXT (default) | SSL | SASL_PLAINTEXT | SASL_SSL
    MAKEGOOD_KAFKA_SASL_MECHANISM        SCRAM-SHA-512 (default with SASL) | SCRAM-SHA-256 | PLAIN
    MAKEGOOD_KAFKA_SASL_USERNAME         the principal's name (not a secret)
    MAKEGOOD_KAFKA_SASL_PASSWORD_FILE    a file whose first line is the password
    MAKEGOOD_KAFKA_SSL_CA_FILE           PEM bundle the brokers' certificates are checked against
    MAKEGOOD_KAFKA_SSL_CERT_FILE         client certificate (PEM): mutual TLS
    MAKEGOOD_KAFKA_SSL_KEY_FILE          its private key (PEM)
    MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE the key's passphrase, if it has one
    MAKEGOOD_KAFKA_SSL_VERIFY_HOSTNAME   true (default) | false

Redis (`Settings.redis_kwargs()`, next to MAKEGOOD_REDIS_URL; `rediss://` is TLS):

    MAKEGOOD_REDIS_USERNAME              an ACL user (Redis 6+); default: the URL's, else `default`
    MAKEGOOD_REDIS_PASSWORD_FILE         its password
    MAKEGOOD_REDIS_SSL_CA_FILE           CA for a rediss:// server
    MAKEGOOD_REDIS_SSL_CERT_FILE / MAKEGOOD_REDIS_SSL_KEY_FILE   client certificate, if required

Secrets are never taken from a variable's value or a command-line argument, only from files (as
Kubernetes mounts Secrets); a `..._PASSWORD` variable is refused, so it is not silently ignored.
Settings hold the file *paths*; the secret is read when a client is configured (a rotated file
is picked up by the next client) and never kept in anything that is printed. `redact()` scrubs
every configured secret (and any URL password) from a text: the CLI's error lines and the
worker's log records go through it.
"""
from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from streams.errors import ConfigError

KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:)(?P<pw>[^@\s/]+)(?=@)")
REFUSED_VALUES = ("MAKEGOOD_KAFKA_SASL_PASSWORD", "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD", "MAKEGOOD_REDIS_PASSWORD")


def read_secret(path: Path, name: str) -> str:
    """The first line of a secret file; errors name the variable and the path, never content."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path} ({exc.strerror})") from None
    if not lines or not lines[0].strip():
        raise ConfigError(f"{name}: {path} is empty")
    return lines[0].strip()


def _readable(path: Path | None, name: str) -> None:
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{name}: {path} is not a readable file")


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = (env.get(name) or "").strip()
    return Path(value) if value else None


def _refuse_values(env: Mapping[str, str]) -> None:
    for name in REFUSED_VALUES:
        if env.get(name):
            raise ConfigError(f"{name} is not read: put the secret in a file and set {name}_FILE to its path")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None
    ssl_key_password_file: Path | None = None
    ssl_verify_hostname: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "KafkaSecurity":
        _refuse_values(env)
        protocol = (env.get("MAKEGOOD_KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").strip().upper()
        mechanism = (env.get("MAKEGOOD_KAFKA_SASL_MECHANISM") or "").strip().upper()
        verify = (env.get("MAKEGOOD_KAFKA_SSL_VERIFY_HOSTNAME") or "true").strip().lower()
        if verify not in _TRUE + _FALSE:
            raise ConfigError(f"MAKEGOOD_KAFKA_SSL_VERIFY_HOSTNAME={verify!r} is not true or false")
        sec = cls(protocol=protocol,
                  sasl_mechanism=mechanism or ("SCRAM-SHA-512" if protocol.startswith("SASL") else ""),
                  sasl_username=(env.get("MAKEGOOD_KAFKA_SASL_USERNAME") or "").strip(),
                  sasl_password_file=_path(env, "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE"),
                  ssl_ca_file=_path(env, "MAKEGOOD_KAFKA_SSL_CA_FILE"),
                  ssl_cert_file=_path(env, "MAKEGOOD_KAFKA_SSL_CERT_FILE"),
                  ssl_key_file=_path(env, "MAKEGOOD_KAFKA_SSL_KEY_FILE"),
                  ssl_key_password_file=_path(env, "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE"),
                  ssl_verify_hostname=verify in _TRUE)
        sec.validate()
        return sec

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def validate(self) -> None:
        if self.protocol not in KAFKA_PROTOCOLS:
            raise ConfigError(f"MAKEGOOD_KAFKA_SECURITY_PROTOCOL={self.protocol!r} is not one of "
                              + ", ".join(KAFKA_PROTOCOLS))
        if self.sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigError(f"MAKEGOOD_KAFKA_SASL_MECHANISM={self.sasl_mechanism!r} is not one of "
                                  + ", ".join(SASL_MECHANISMS))
            if not self.sasl_username or self.sasl_password_file is None:
                raise ConfigError(f"{self.protocol} needs MAKEGOOD_KAFKA_SASL_USERNAME and "
                                  "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE")
            _readable(self.sasl_password_file, "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE")
        elif self.sasl_username or self.sasl_password_file:
            raise ConfigError(f"MAKEGOOD_KAFKA_SASL_* set, but MAKEGOOD_KAFKA_SECURITY_PROTOCOL={self.protocol} "
                              "does not use SASL (SASL_SSL or SASL_PLAINTEXT)")
        tls_files = (self.ssl_ca_file, self.ssl_cert_file, self.ssl_key_file, self.ssl_key_password_file)
        if not self.tls and any(tls_files):
            raise ConfigError(f"MAKEGOOD_KAFKA_SSL_* set, but MAKEGOOD_KAFKA_SECURITY_PROTOCOL={self.protocol} "
                              "does not use TLS (SSL or SASL_SSL)")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ConfigError("mutual TLS needs both MAKEGOOD_KAFKA_SSL_CERT_FILE and MAKEGOOD_KAFKA_SSL_KEY_FILE")
        for path, name in zip(tls_files, ("MAKEGOOD_KAFKA_SSL_CA_FILE", "MAKEGOOD_KAFKA_SSL_CERT_FILE",
                                          "MAKEGOOD_KAFKA_SSL_KEY_FILE", "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE")):
            _readable(path, name)

    def librdkafka(self) -> dict:
        """The librdkafka (confluent-kafka) entries; reads the secret files now."""
        conf: dict = {"security.protocol": self.protocol.lower()}
        if self.sasl:
            conf.update({"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                         "sasl.password": read_secret(self.sasl_password_file, "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE")})
        if self.tls:
            conf["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_verify_hostname else "none"
            if self.ssl_ca_file:
                conf["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file:
                conf["ssl.certificate.location"] = str(self.ssl_cert_file)
                conf["ssl.key.location"] = str(self.ssl_key_file)
            if self.ssl_key_password_file:
                conf["ssl.key.password"] = read_secret(self.ssl_key_password_file,
                                                       "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE")
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """For Python clients (aiokafka, faust): the same CA, client certificate and checks."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None)
        ctx.check_hostname = self.ssl_verify_hostname
        if self.ssl_cert_file:
            password = (read_secret(self.ssl_key_password_file, "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE")
                        if self.ssl_key_password_file else None)
            ctx.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file), password=password)
        return ctx

    def aiokafka_kwargs(self) -> dict:
        """aiokafka client keyword arguments (faust passes the same to aiokafka)."""
        kw: dict = {"security_protocol": self.protocol}
        if self.tls:
            kw["ssl_context"] = self.ssl_context()
        if self.sasl:
            kw.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                      sasl_plain_password=read_secret(self.sasl_password_file, "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE"))
        return kw

    def env(self) -> dict[str, str]:
        """The MAKEGOOD_KAFKA_* variables that give a child process these settings (paths only)."""
        out = {"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": self.protocol}
        pairs = {"MAKEGOOD_KAFKA_SASL_MECHANISM": self.sasl_mechanism if self.sasl else "",
                 "MAKEGOOD_KAFKA_SASL_USERNAME": self.sasl_username,
                 "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE": self.sasl_password_file,
                 "MAKEGOOD_KAFKA_SSL_CA_FILE": self.ssl_ca_file,
                 "MAKEGOOD_KAFKA_SSL_CERT_FILE": self.ssl_cert_file,
                 "MAKEGOOD_KAFKA_SSL_KEY_FILE": self.ssl_key_file,
                 "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE": self.ssl_key_password_file}
        out.update({k: str(v) for k, v in pairs.items() if v})
        if self.tls and not self.ssl_verify_hostname:
            out["MAKEGOOD_KAFKA_SSL_VERIFY_HOSTNAME"] = "false"
        return out

    def describe(self) -> str:
        """One line for logs: protocol, mechanism and user; never a secret."""
        if not self.sasl:
            return self.protocol + (" (client certificate)" if self.ssl_cert_file else "")
        return f"{self.protocol} {self.sasl_mechanism} as {self.sasl_username}"

    def secrets(self) -> list[str]:
        out = []
        for path, name in ((self.sasl_password_file, "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE"),
                           (self.ssl_key_password_file, "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE")):
            if path is not None:
                try:
                    out.append(read_secret(path, name))
                except ConfigError:
                    pass
        return out


@dataclass(frozen=True)
class RedisSecurity:
    username: str = ""
    password_file: Path | None = None
    ssl_ca_file: Path | None = None
    ssl_cert_file: Path | None = None
    ssl_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "RedisSecurity":
        _refuse_values(env)
        sec = cls(username=(env.get("MAKEGOOD_REDIS_USERNAME") or "").strip(),
                  password_file=_path(env, "MAKEGOOD_REDIS_PASSWORD_FILE"),
                  ssl_ca_file=_path(env, "MAKEGOOD_REDIS_SSL_CA_FILE"),
                  ssl_cert_file=_path(env, "MAKEGOOD_REDIS_SSL_CERT_FILE"),
                  ssl_key_file=_path(env, "MAKEGOOD_REDIS_SSL_KEY_FILE"))
        if (sec.ssl_cert_file is None) != (sec.ssl_key_file is None):
            raise ConfigError("a Redis client certificate needs both MAKEGOOD_REDIS_SSL_CERT_FILE and "
                              "MAKEGOOD_REDIS_SSL_KEY_FILE")
        for path, name in ((sec.password_file, "MAKEGOOD_REDIS_PASSWORD_FILE"),
                           (sec.ssl_ca_file, "MAKEGOOD_REDIS_SSL_CA_FILE"),
                           (sec.ssl_cert_file, "MAKEGOOD_REDIS_SSL_CERT_FILE"),
                           (sec.ssl_key_file, "MAKEGOOD_REDIS_SSL_KEY_FILE")):
            _readable(path, name)
        return sec

    def client_kwargs(self, url: str) -> dict:
        """Keyword arguments for `redis.Redis.from_url(url, ...)` (sync or asyncio)."""
        tls = url.startswith("rediss://")
        if not tls and (self.ssl_ca_file or self.ssl_cert_file):
            raise ConfigError("MAKEGOOD_REDIS_SSL_* set, but MAKEGOOD_REDIS_URL is not rediss:// (TLS)")
        kw: dict = {}
        if self.username:
            kw["username"] = self.username
        if self.password_file:
            kw["password"] = read_secret(self.password_file, "MAKEGOOD_REDIS_PASSWORD_FILE")
        if tls:
            kw["ssl_cert_reqs"] = "required"
            if self.ssl_ca_file:
                kw["ssl_ca_certs"] = str(self.ssl_ca_file)
            if self.ssl_cert_file:
                kw.update(ssl_certfile=str(self.ssl_cert_file), ssl_keyfile=str(self.ssl_key_file))
        return kw

    def env(self) -> dict[str, str]:
        pairs = {"MAKEGOOD_REDIS_USERNAME": self.username, "MAKEGOOD_REDIS_PASSWORD_FILE": self.password_file,
                 "MAKEGOOD_REDIS_SSL_CA_FILE": self.ssl_ca_file, "MAKEGOOD_REDIS_SSL_CERT_FILE": self.ssl_cert_file,
                 "MAKEGOOD_REDIS_SSL_KEY_FILE": self.ssl_key_file}
        return {k: str(v) for k, v in pairs.items() if v}

    def secrets(self) -> list[str]:
        if self.password_file is None:
            return []
        try:
            return [read_secret(self.password_file, "MAKEGOOD_REDIS_PASSWORD_FILE")]
        except ConfigError:
            return []


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL password and every given secret replaced by ***."""
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        out = out.replace(secret, "***")
    return out


class RedactSecrets(logging.Filter):
    """A log filter that scrubs secrets (and URL passwords) from a record's message and args."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text, self.secrets) != text:
                record.msg = f"{clean} ({redact(text.strip().splitlines()[-1], self.secrets)})"
                record.args, record.exc_info, record.exc_text = None, None, None
        return True
