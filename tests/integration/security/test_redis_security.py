"""The ledger's Redis with an ACL user whose password comes from a file, over TLS (rediss://,
Debian's redis-server is built with TLS), on a private redis-server: the shared one is never
reconfigured. The `makegood status` command reads the ledger through the same settings the
workers use (Settings.redis_kwargs)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_lib

from streams.dev.secure import LocalSecurity
from streams.dev.stack import RedisServer
from streams.ledger.store import SyncLedger
from streams.kafka.topics import create_topics
from streams.settings import Settings
from tests.integration.conftest import free_port

USER = "makegood-ledger"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    """A redis-server with TLS only (no plaintext port), default user off, one ACL user allowed
    only the ledger's keys (mg:*)."""
    home = tmp_path_factory.mktemp("redis-tls")
    certs = LocalSecurity(home, [])           # the local CA and a certificate for 127.0.0.1
    certs.ensure()
    password = home / "ledger.password"
    password.write_text("l3dger-Secret-from-a-file\n")
    password.chmod(0o600)
    acl = home / "users.acl"
    acl.write_text(f"user default off\nuser {USER} on >{password.read_text().strip()} ~mg:* &* +@all\n")
    port = free_port()
    server = RedisServer(home / "data", port, tied=True, server_args=(
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certs.dir / "broker.pem"),
        "--tls-key-file", str(certs.dir / "broker.key"), "--tls-ca-cert-file", str(certs.ca),
        "--tls-auth-clients", "no", "--aclfile", str(acl)),
        client={"ssl": True, "ssl_ca_certs": str(certs.ca), "username": USER,
                "password": password.read_text().strip()})
    server.up(lambda _m: None)
    yield {"port": port, "ca": certs.ca, "password": password, "secret": password.read_text().strip()}
    server.down(lambda _m: None)


def _env(r, **over) -> dict[str, str]:
    env = {"MAKEGOOD_REDIS_URL": f"rediss://127.0.0.1:{r['port']}/0", "MAKEGOOD_REDIS_USERNAME": USER,
           "MAKEGOOD_REDIS_PASSWORD_FILE": str(r["password"]), "MAKEGOOD_REDIS_SSL_CA_FILE": str(r["ca"]),
           "MAKEGOOD_NAMESPACE": "redis-sec"}
    env.update(over)
    return {k: v for k, v in env.items() if v is not None}


def _status(env: dict[str, str]):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAKEGOOD_REDIS")}
    full.update(env, MAKEGOOD_SCHEMA_REGISTRY_URL="none")
    return subprocess.run([sys.executable, "-m", "streams.cli", "status", "u1"], env=full,
                          capture_output=True, text=True, timeout=60)


def test_the_ledger_works_as_an_acl_user_over_tls(tls_redis):
    s = Settings.from_env(_env(tls_redis))
    ledger = SyncLedger(s)
    try:
        assert ledger.size() == 0 and ledger.issued(["a", "b"]) == set()
    finally:
        ledger.close()
    raw = redis_lib.Redis.from_url(s.redis_url, **s.redis_kwargs())
    raw.sadd(s.redis_prefix + "probe", "x")
    with pytest.raises(redis_lib.exceptions.NoPermissionError):
        raw.set("not-the-ledger", "x")              # the ACL user is confined to mg:* keys
    create_topics(s)                                # status also reads the user's notices from Kafka
    done = _status(_env(tls_redis))                 # the ledger read as the ACL user: nothing for u1
    assert done.returncode == 1 and "no remedies, notices or review cases for user 'u1'" in done.stderr, done.stderr


def test_a_wrong_password_or_a_missing_ca_is_one_line_without_the_secret(tls_redis, tmp_path):
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-ledger-password\n")
    for env, says in ((_env(tls_redis, MAKEGOOD_REDIS_PASSWORD_FILE=str(wrong)), "invalid username-password"),
                      (_env(tls_redis, MAKEGOOD_REDIS_SSL_CA_FILE=None), "certificate verify failed")):
        done = _status(env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and says in lines[0], done.stderr
        assert "not-the-ledger-password" not in done.stderr + done.stdout
        assert tls_redis["secret"] not in done.stderr + done.stdout


def test_a_password_in_the_redis_url_never_reaches_an_error_line(tls_redis):
    url = f"rediss://{USER}:Url-Secret-123@127.0.0.1:{tls_redis['port']}/0"
    done = _status(_env(tls_redis, MAKEGOOD_REDIS_URL=url, MAKEGOOD_REDIS_USERNAME=None,
                        MAKEGOOD_REDIS_PASSWORD_FILE=None))
    assert done.returncode == 1 and "Url-Secret-123" not in done.stderr + done.stdout, done.stderr
    assert "cannot read the ledger at 127.0.0.1" in done.stderr
    # an unparsable URL is named without its password too
    bad = _status(_env(tls_redis, MAKEGOOD_REDIS_URL="rediss://u:Url-Secret-123@127.0.0.1:notaport/0"))
    assert bad.returncode != 0 and "Url-Secret-123" not in bad.stderr + bad.stdout, bad.stderr
