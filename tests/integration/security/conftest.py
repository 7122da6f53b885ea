"""A broker with the secured listener of `makegood dev up` (SASL_SSL, SCRAM users, ACLs).

The dev stack's own broker is used when it has one (`make test` from a clean clone brings it
up); otherwise, as when the shared broker predates the listener, one private broker is started
for the whole session on free ports (about 15-20 s), with the same code (`LocalKafka`)."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, replace
from typing import Iterator

import pytest

from streams.dev.secure import ADMIN_USER
from streams.dev.stack import LocalKafka
from streams.kafka.acls import default_roles_file, delete_acls, load_roles
from streams.kafka.topics import delete_namespace
from streams.settings import Settings
from tests.integration.conftest import delete_redis_keys, free_port


@pytest.fixture(scope="session")
def secure_broker(stack: Settings, tmp_path_factory) -> Iterator[LocalKafka]:
    shared = LocalKafka(stack)
    if shared.local and shared.secured:
        yield shared
        return
    port, controller, secure, mtls = free_port(), free_port(), free_port(), free_port()
    s = Settings.from_env(bootstrap=f"127.0.0.1:{port}", state_dir=stack.state_dir)
    broker = LocalKafka(s, port=port, controller_port=controller, secure_port=secure, mtls_port=mtls,
                        home=tmp_path_factory.mktemp("kafka-secured"), tied=True)
    broker.up(lambda _m: None)
    yield broker
    broker.kill()


@dataclass
class Secured:
    """One test's namespace on the secured listener: settings per role, and the super user's."""
    plain: Settings          # the PLAINTEXT listener (super user): setup and cleanup only
    admin: Settings
    worker: Settings
    publisher: Settings
    billing: Settings
    broker: LocalKafka

    def as_user(self, user: str, **kw) -> Settings:
        return replace(self.broker.client(user, **kw), namespace=self.plain.namespace,
                       state_dir=self.plain.state_dir, redis_url=self.plain.redis_url)


def cli(settings: Settings, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """`makegood ARGS` as a separate process connected the way `settings` are."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAKEGOOD_")}
    full.update(settings.client_env(), MAKEGOOD_NAMESPACE=settings.namespace, **(env or {}))
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], env=full, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def secured(stack: Settings, secure_broker: LocalKafka) -> Iterator[Secured]:
    """A fresh namespace whose topics and ACLs were made by `makegood topics create --acls`,
    run as the admin over SASL_SSL."""
    ns = f"s{uuid.uuid4().hex[:10]}"
    plain = replace(secure_broker.settings, namespace=ns, state_dir=stack.state_dir, redis_url=stack.redis_url)
    base = Secured(plain, *(None,) * 4, broker=secure_broker)
    sec = replace(base, admin=base.as_user(ADMIN_USER), worker=base.as_user("makegood-worker"),
                  publisher=base.as_user("makegood-publisher"), billing=base.as_user("billing"))
    done = cli(sec.admin, "topics", "create", "--acls")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "acls: worker -> User:makegood-worker" in done.stdout
    yield sec
    delete_acls(plain, load_roles(default_roles_file(plain)))
    delete_namespace(plain)
    delete_redis_keys(plain)
