"""Client security settings (streams/security.py): what each protocol gives librdkafka, Redis
and the Python Kafka clients, secrets only from files, and never in anything printed."""
from __future__ import annotations

import io
import logging
import ssl

import pytest

from streams.errors import ConfigError
from streams.security import KafkaSecurity, RedactSecrets, RedisSecurity, redact
from streams.settings import Settings

SECRET = "pa55-w0rd-from-a-file"


@pytest.fixture
def files(tmp_path):
    pw = tmp_path / "kafka.password"
    pw.write_text(SECRET + "\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    return {"pw": str(pw), "ca": str(ca), "dir": tmp_path}


def _sasl_env(files, **over):
    env = {"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MAKEGOOD_KAFKA_SASL_USERNAME": "makegood-worker",
           "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE": files["pw"], "MAKEGOOD_KAFKA_SSL_CA_FILE": files["ca"]}
    env.update(over)
    return env


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol():
    conf = Settings.from_env({}).kafka_config()
    assert conf["security.protocol"] == "plaintext"
    assert not any(k.startswith(("sasl.", "ssl.")) for k in conf)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_sasl_ssl_gives_every_librdkafka_client_the_mechanism_user_password_and_ca(files, mechanism):
    s = Settings.from_env(_sasl_env(files, MAKEGOOD_KAFKA_SASL_MECHANISM=mechanism.lower()))
    for conf in (s.kafka_config(), s.producer_config(), s.kafka_config(**{"group.id": "g"})):
        assert conf["security.protocol"] == "sasl_ssl" and conf["sasl.mechanism"] == mechanism
        assert conf["sasl.username"] == "makegood-worker" and conf["sasl.password"] == SECRET
        assert conf["ssl.ca.location"] == files["ca"] and conf["ssl.endpoint.identification.algorithm"] == "https"


def test_sasl_defaults_to_scram_sha_512_and_sasl_plaintext_has_no_tls(files):
    env = _sasl_env(files, MAKEGOOD_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT")
    del env["MAKEGOOD_KAFKA_SSL_CA_FILE"]
    conf = Settings.from_env(env).kafka_config()
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512" and not any(k.startswith("ssl.") for k in conf)


def test_mutual_tls_names_the_client_certificate_and_reads_the_key_password_from_its_file(files):
    d = files["dir"]
    for name in ("client.pem", "client.key"):
        (d / name).write_text("x")
    (d / "key.password").write_text("key-secret\n")
    s = Settings.from_env({"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": "ssl", "MAKEGOOD_KAFKA_SSL_CA_FILE": files["ca"],
                           "MAKEGOOD_KAFKA_SSL_CERT_FILE": str(d / "client.pem"),
                           "MAKEGOOD_KAFKA_SSL_KEY_FILE": str(d / "client.key"),
                           "MAKEGOOD_KAFKA_SSL_KEY_PASSWORD_FILE": str(d / "key.password"),
                           "MAKEGOOD_KAFKA_SSL_VERIFY_HOSTNAME": "false"})
    conf = s.kafka_config()
    assert conf["security.protocol"] == "ssl" and conf["ssl.key.password"] == "key-secret"
    assert conf["ssl.certificate.location"].endswith("client.pem") and conf["ssl.key.location"].endswith("client.key")
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert "sasl.username" not in conf


@pytest.mark.parametrize("env, says", [
    ({"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": "TLS"}, "is not one of"),
    ({"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs MAKEGOOD_KAFKA_SASL_USERNAME"),
    ({"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MAKEGOOD_KAFKA_SASL_MECHANISM": "GSSAPI",
      "MAKEGOOD_KAFKA_SASL_USERNAME": "u", "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE": "/nonexistent"}, "is not one of"),
    ({"MAKEGOOD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MAKEGOOD_KAFKA_SASL_USERNAME": "u",
      "MAKEGOOD_KAFKA_SASL_PASSWORD_FILE": "/nonexistent/pw"}, "/nonexistent/pw is not a readable file"),
    ({"MAKEGOOD_KAFKA_SASL_USERNAME": "u"}, "does not use SASL"),
    ({"MAKEGOOD_KAFKA_SSL_CA_FILE": "/etc/hostname"}, "does not use TLS"),
    ({"MAKEGOOD_KAFKA_SASL_PASSWORD": SECRET}, "put the secret in a file and set MAKEGOOD_KAFKA_SASL_PASSWORD_FILE"),
    ({"MAKEGOOD_REDIS_PASSWORD": SECRET}, "MAKEGOOD_REDIS_PASSWORD_FILE"),
])
def test_bad_security_settings_are_one_line_that_never_holds_a_secret(env, says):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env)
    assert says in str(err.value) and SECRET not in str(err.value)


def test_the_settings_repr_and_child_environment_hold_paths_never_secrets(files):
    s = Settings.from_env(_sasl_env(files, MAKEGOOD_REDIS_URL="redis://ledger:url-s3cret@10.0.0.5:6379/0"))
    assert SECRET not in repr(s) and "url-s3cret" not in repr(s)
    env = s.client_env()
    assert env["MAKEGOOD_KAFKA_SASL_PASSWORD_FILE"] == files["pw"] and SECRET not in " ".join(env.values())
    assert Settings.from_env(env).kafka_config() == {**s.kafka_config(), "client.id": Settings.from_env(env).worker_id}
    assert s.kafka_security.describe() == "SASL_SSL SCRAM-SHA-512 as makegood-worker"


def test_a_rotated_password_file_is_read_by_the_next_client(files):
    s = Settings.from_env(_sasl_env(files))
    (files["dir"] / "kafka.password").write_text("rotated\n")
    assert s.kafka_config()["sasl.password"] == "rotated"


def test_redact_scrubs_configured_secrets_and_url_passwords(files):
    s = Settings.from_env(_sasl_env(files, MAKEGOOD_REDIS_URL="rediss://ledger:url-s3cret@r:6380/0"))
    text = (f"failed with {s.kafka_config()} talking to rediss://ledger:url-s3cret@r:6380/0 "
            f"and http://u:other@registry:8081")
    clean = s.redact(text)
    assert SECRET not in clean and "url-s3cret" not in clean and "other@" not in clean
    assert "rediss://ledger:***@r:6380/0" in clean and "http://u:***@registry:8081" in clean
    assert redact("no secrets here") == "no secrets here"


def test_log_records_are_scrubbed_even_in_their_arguments_and_exceptions():
    out = io.StringIO()
    log = logging.getLogger("test.security.redact")
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets([SECRET]))
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("connecting with %s", {"sasl.password": SECRET})
        try:
            raise RuntimeError(f"refused redis://:{SECRET}@h:1/0")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    assert SECRET not in out.getvalue() and "***" in out.getvalue()


def test_redis_acl_user_password_file_and_tls(files):
    env = {"MAKEGOOD_REDIS_URL": "rediss://redis.internal:6380/0", "MAKEGOOD_REDIS_USERNAME": "makegood-ledger",
           "MAKEGOOD_REDIS_PASSWORD_FILE": files["pw"], "MAKEGOOD_REDIS_SSL_CA_FILE": files["ca"]}
    kw = Settings.from_env(env).redis_kwargs()
    assert kw == {"username": "makegood-ledger", "password": SECRET, "ssl_cert_reqs": "required",
                  "ssl_ca_certs": files["ca"]}
    with pytest.raises(ConfigError, match="is not rediss://"):
        Settings.from_env({**env, "MAKEGOOD_REDIS_URL": "redis://redis.internal:6379/0"}).redis_kwargs()
    assert Settings.from_env({}).redis_kwargs() == {}
    assert RedisSecurity().client_kwargs("redis://h/0") == {}


def test_python_kafka_clients_get_the_same_security(files, tmp_path):
    import subprocess
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k"),
                    "-out", str(tmp_path / "c.pem"), "-days", "1", "-subj", "/CN=t"], check=True, capture_output=True)
    sec = KafkaSecurity.from_env(_sasl_env(files, MAKEGOOD_KAFKA_SSL_CA_FILE=str(tmp_path / "c.pem")))
    kw = sec.aiokafka_kwargs()
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["sasl_plain_password"] == SECRET and isinstance(kw["ssl_context"], ssl.SSLContext)
    assert kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED and kw["ssl_context"].check_hostname


def test_the_schema_registry_client_gets_its_ca(files):
    s = Settings.from_env({"MAKEGOOD_SCHEMA_REGISTRY_URL": "https://registry.internal/apis/ccompat/v7",
                           "MAKEGOOD_SCHEMA_REGISTRY_CA_FILE": files["ca"]})
    assert s.schema_registry_config()["ssl.ca.location"] == files["ca"]
    assert s.client_env()["MAKEGOOD_SCHEMA_REGISTRY_CA_FILE"] == files["ca"]
    with pytest.raises(ConfigError, match="is not a readable file"):
        Settings.from_env({"MAKEGOOD_SCHEMA_REGISTRY_CA_FILE": "/nonexistent/ca.pem"})
