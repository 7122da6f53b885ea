"""Why a Kafka client cannot connect, in one line: refused credentials, an unverifiable broker
certificate, or no broker at all.

librdkafka reports a failed metadata request only as "Broker transport failure"; the cause
(SASL authentication failed, TLS handshake failed) reaches the client's error callback. An
admin client from `admin_with_errors` keeps those, and `explain` turns the last one into a
`KafkaAccessError` that names the setting to fix and never the secret.
"""
from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streams.errors import KafkaAccessError
from streams.settings import Settings


def admin_with_errors(settings: Settings) -> tuple[AdminClient, list[KafkaError]]:
    errors: list[KafkaError] = []
    return AdminClient(settings.kafka_config(error_cb=errors.append)), errors


def explain(settings: Settings, admin: AdminClient, errors: list[KafkaError]) -> KafkaAccessError | None:
    """The access error behind a failed request, if the client saw one (serves its callbacks)."""
    admin.poll(0.5)
    sec = settings.kafka_security
    for err in reversed(errors):
        if err.code() == KafkaError._AUTHENTICATION:
            return KafkaAccessError(
                f"Kafka at {settings.bootstrap} refused {sec.describe()}: authentication failed; check "
                f"MAKEGOOD_KAFKA_SASL_USERNAME and the password in MAKEGOOD_KAFKA_SASL_PASSWORD_FILE "
                f"({sec.sasl_password_file})" if sec.sasl else
                f"Kafka at {settings.bootstrap} refused the client ({sec.describe()}): authentication failed; "
                "check MAKEGOOD_KAFKA_SECURITY_PROTOCOL and the client certificate")
        text = err.str()
        if err.code() == KafkaError._SSL or "SSL" in text:
            if "certificate verify failed" in text:
                return KafkaAccessError(
                    f"TLS with Kafka at {settings.bootstrap} failed: the broker's certificate could not be "
                    "verified; set MAKEGOOD_KAFKA_SSL_CA_FILE to the CA that signed it"
                    + (f" (now {sec.ssl_ca_file})" if sec.ssl_ca_file else ""))
            if any(t in text for t in ("bad certificate", "certificate required", "client authentication")):
                return KafkaAccessError(
                    f"TLS with Kafka at {settings.bootstrap} failed: the broker requires a client certificate "
                    "(MAKEGOOD_KAFKA_SSL_CERT_FILE and MAKEGOOD_KAFKA_SSL_KEY_FILE)" if not sec.ssl_cert_file else
                    f"TLS with Kafka at {settings.bootstrap} failed: the broker did not accept the client "
                    f"certificate {sec.ssl_cert_file}")
            reason = text.split(": ", 1)[-1].split(" (after ", 1)[0]   # without the broker's address
            return KafkaAccessError(f"TLS with Kafka at {settings.bootstrap} failed: {reason}")
    return None


def list_topics(settings: Settings, timeout: float = 15.0) -> tuple[AdminClient, set[str]]:
    """(an admin client, the topics it may see); raises KafkaAccessError when refused, else the
    KafkaException of an unreachable cluster."""
    admin, errors = admin_with_errors(settings)
    try:
        return admin, set(admin.list_topics(timeout=timeout).topics)
    except KafkaException:
        refused = explain(settings, admin, errors)
        if refused is not None:
            raise refused from None
        raise
