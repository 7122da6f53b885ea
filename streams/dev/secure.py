"""The local broker's secured listeners: SASL_SSL on loopback, with a CA, a broker certificate,
SCRAM users per role and Kafka's StandardAuthorizer enforcing deploy/acls.yaml; and SSL with
client certificates (mutual TLS), where a certificate's CN is the principal (`CN=billing` is
User:billing), so the same ACLs bind both.

Everything is generated on the first `makegood dev up` under the broker's home
(`.stack/kafka/security/`, never committed): a CA and a broker certificate for 127.0.0.1 and
localhost (openssl), the broker's PKCS12 keystore, one random password per user, each in a
file of its own with mode 600, and one client certificate and key per user (`<user>.pem`,
`<user>.key`). A second `up` reuses them.

Users (SCRAM-SHA-256 and -512, and PLAIN with the same passwords) are the roles' principals
plus `makegood-admin`, a super user for `topics create --acls` over the secured listener. They
are upserted through the Admin API on every `up` rather than passed to `kafka-storage format
--add-scram`: that would put every password on a command line (visible in the process list),
and storage formatted before the listener existed would never get them.

The PLAINTEXT listener (127.0.0.1:9092) stays open to everything: its principal, User:ANONYMOUS,
is a super user. It listens on loopback only, it is the one the controller and the broker talk
over, and the tests, the demo and the benchmarks use it; the authorisation the roles get is
proven on the SASL_SSL listener, where nobody is a super user but the admin.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Callable

from streams.errors import StackError
from streams.security import KafkaSecurity
from streams.settings import Settings

ADMIN_USER = "makegood-admin"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
CERT_DAYS = 825


def _private(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    path.write_text(text)


class LocalSecurity:
    """The CA, broker keystore and user passwords of one local broker (under `home/security`)."""

    def __init__(self, home: Path, users: list[str]):
        self.dir = home / "security"
        self.users = sorted({*users, ADMIN_USER})
        self.ca = self.dir / "ca.pem"
        self.keystore = self.dir / "broker.p12"
        self.keystore_password = self.dir / "broker.p12.password"

    def password_file(self, user: str) -> Path:
        return self.dir / f"{user}.password"

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    def ensure(self) -> None:
        """Generate what is missing: CA, broker certificate and keystore, user passwords."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        if not (self.ca.exists() and self.keystore.exists() and self.keystore_password.exists()):
            self._certificates()
        for user in self.users:
            if not self.password_file(user).exists():
                _private(self.password_file(user), secrets.token_urlsafe(24) + "\n")
            if not self.cert_file(user).exists():
                self._client_certificate(user)

    def cert_file(self, user: str) -> Path:
        return self.dir / f"{user}.pem"

    def key_file(self, user: str) -> Path:
        return self.dir / f"{user}.key"

    def _client_certificate(self, user: str) -> None:
        (self.dir / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{user}.key", "-out", f"{user}.csr",
                      "-subj", f"/CN={user}")
        self._openssl("x509", "-req", "-in", f"{user}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                      "-out", f"{user}.pem", "-days", str(CERT_DAYS), "-extfile", "client.ext")
        os.chmod(self.key_file(user), 0o600)

    def _openssl(self, *args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=self.dir, capture_output=True, text=True)
        if done.returncode != 0:
            raise StackError(f"kafka: openssl {args[0]} failed: {(done.stderr or done.stdout)[-800:]}")

    def _certificates(self) -> None:
        _private(self.keystore_password, secrets.token_urlsafe(24) + "\n")
        (self.dir / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                             "extendedKeyUsage=serverAuth\n")
        self._openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                      "-days", str(CERT_DAYS), "-subj", "/CN=makegood local CA")
        self._openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "broker.key", "-out", "broker.csr",
                      "-subj", "/CN=localhost")
        self._openssl("x509", "-req", "-in", "broker.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", "broker.pem", "-days", str(CERT_DAYS), "-extfile", "broker.ext")
        self._openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
                      "-name", "broker", "-out", "broker.p12", "-passout", f"file:{self.keystore_password.name}")
        for key in ("ca.key", "broker.key", "broker.p12"):
            os.chmod(self.dir / key, 0o600)

    def server_properties(self, port: int) -> list[str]:
        """The broker's lines for the SASL_SSL and SSL listeners and the authorizer (the file is
        mode 600: it holds the keystore password and the PLAIN users' passwords)."""
        plain_users = " ".join(f'user_{u}="{self.password(u)}"' for u in self.users)
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        store = self.keystore_password.read_text().strip()
        return [
            f"listener.name.ssl.ssl.keystore.location={self.keystore}",
            "listener.name.ssl.ssl.keystore.type=PKCS12",
            f"listener.name.ssl.ssl.keystore.password={store}",
            f"listener.name.ssl.ssl.key.password={store}",
            f"listener.name.ssl.ssl.truststore.location={self.ca}",
            "listener.name.ssl.ssl.truststore.type=PEM",
            "listener.name.ssl.ssl.client.auth=required",
            "ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram}",
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram}",
            "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain."
            f"PlainLoginModule required {plain_users};",
            f"listener.name.sasl_ssl.ssl.keystore.location={self.keystore}",
            "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
            f"listener.name.sasl_ssl.ssl.keystore.password={self.keystore_password.read_text().strip()}",
            f"listener.name.sasl_ssl.ssl.key.password={self.keystore_password.read_text().strip()}",
            "listener.name.sasl_ssl.ssl.client.auth=none",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:ANONYMOUS;User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found=false",
        ]

    def register_users(self, admin_settings: Settings) -> None:
        """Upsert every user's SCRAM credentials (both mechanisms) over the super-user listener."""
        from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                           UserScramCredentialUpsertion)
        from streams.kafka.topics import admin_client
        admin = admin_client(admin_settings)       # held: the futures die with their client
        for mechanism in MECHANISMS:                # one change per user and request
            info = ScramCredentialInfo(getattr(ScramMechanism, mechanism.replace("-", "_")), 8192)
            upserts = [UserScramCredentialUpsertion(user, info, self.password(user).encode()) for user in self.users]
            for user, fut in admin.alter_user_scram_credentials(upserts, request_timeout=30).items():
                try:
                    fut.result()
                except Exception as exc:  # noqa: BLE001
                    raise StackError(f"kafka: could not set the {mechanism} credentials of {user}: {exc}") from None

    def client(self, base: Settings, user: str, port: int, mechanism: str = "SCRAM-SHA-512") -> Settings:
        """Settings that connect to this broker's SASL_SSL listener as `user`."""
        sec = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism=mechanism, sasl_username=user,
                            sasl_password_file=self.password_file(user), ssl_ca_file=self.ca)
        sec.validate()
        return replace(base, bootstrap=f"127.0.0.1:{port}", kafka_security=sec)

    def mtls_client(self, base: Settings, user: str, port: int) -> Settings:
        """Settings that connect to this broker's SSL listener with `user`'s certificate."""
        sec = KafkaSecurity(protocol="SSL", ssl_ca_file=self.ca, ssl_cert_file=self.cert_file(user),
                            ssl_key_file=self.key_file(user))
        sec.validate()
        return replace(base, bootstrap=f"127.0.0.1:{port}", kafka_security=sec)

    def env_file(self, user: str, port: int) -> Path:
        """A file of MAKEGOOD_* lines (paths only) that connects as `user`: `set -a; . FILE`."""
        path = self.dir / f"{user}.env"
        lines = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username=user,
                              sasl_password_file=self.password_file(user), ssl_ca_file=self.ca).env()
        _private(path, f"MAKEGOOD_BOOTSTRAP=127.0.0.1:{port}\n"
                 + "".join(f"{k}={v}\n" for k, v in lines.items()))
        return path


def secure_up(broker_settings: Settings, security: LocalSecurity, port: int, mtls_port: int,
              say: Callable[[str], None]) -> None:
    """After the broker answers: users, the roles' ACLs (the code path of `topics create --acls`)
    and how to connect, by path."""
    from streams.kafka.acls import create_acls, default_roles_file, load_roles
    security.register_users(broker_settings)
    roles = load_roles(default_roles_file(broker_settings), broker_settings.topics_file)
    create_acls(broker_settings, roles, say=lambda _m: None)
    files = [security.env_file(u, port) for u in security.users]
    say(f"kafka: SASL_SSL on 127.0.0.1:{port} (SCRAM-SHA-512/256, PLAIN; ACLs of deploy/acls.yaml for "
        f"{', '.join(sorted(roles))}); CA {security.ca}; connect as a role with `set -a; . {files[0].parent}/<user>.env` "
        f"(users: {', '.join(security.users)}; passwords in <user>.password, mode 600); mutual TLS on "
        f"127.0.0.1:{mtls_port} with <user>.pem and <user>.key")
