"""Operating settings: secrets never printed, one client id, bad values as one line."""
from __future__ import annotations

import pytest

from streams.errors import ConfigError
from streams.settings import Settings, redact_url, redis_address


@pytest.mark.parametrize("url, shown", [
    ("redis://127.0.0.1:6390/0", "redis://127.0.0.1:6390/0"),
    ("redis://:s3cr3t@redis.internal:6379/2", "redis://:***@redis.internal:6379/2"),
    ("rediss://ledger:s3cr3t@redis.internal:6380/0", "rediss://ledger:***@redis.internal:6380/0"),
    ("redis://ledger@redis.internal/0", "redis://***@redis.internal/0"),
    ("redis://redis.internal/0?password=s3cr3t&socket_timeout=5",
     "redis://redis.internal/0?password=***&socket_timeout=5"),
    ("unix://:s3cr3t@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
])
def test_redis_urls_are_shown_without_their_secrets(url, shown):
    assert redact_url(url) == shown
    assert "s3cr3t" not in redact_url(url)


def test_the_settings_never_print_the_redis_url():
    s = Settings.from_env({"MAKEGOOD_REDIS_URL": "redis://:s3cr3t@10.0.0.5:6379/0"})
    assert s.redis_url.endswith("@10.0.0.5:6379/0")
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in s.redis_display
    assert s.redis_address == "10.0.0.5:6379" == redis_address(s.redis_url)


def test_every_confluent_client_is_named_after_the_worker():
    s = Settings.from_env({"MAKEGOOD_WORKER_ID": "worker-7"})
    assert s.kafka_config()["client.id"] == "worker-7"
    assert s.producer_config(**{"linger.ms": 1})["client.id"] == "worker-7"


def test_operating_settings_are_read_and_checked():
    s = Settings.from_env({"MAKEGOOD_METRICS_PORT": "0", "MAKEGOOD_LOG_FORMAT": "JSON",
                           "MAKEGOOD_LIBRARY_LOGLEVEL": "info", "MAKEGOOD_METRICS_HOST": "127.0.0.1"})
    assert (s.metrics_port, s.log_format, s.library_loglevel, s.metrics_host) == (0, "json", "INFO", "127.0.0.1")
    assert Settings.from_env({}).metrics_port == 9400
    with pytest.raises(ConfigError, match="MAKEGOOD_METRICS_PORT='x' is not a whole number"):
        Settings.from_env({"MAKEGOOD_METRICS_PORT": "x"})
    with pytest.raises(ConfigError, match="outside"):
        Settings.from_env({"MAKEGOOD_METRICS_PORT": "70000"})
    with pytest.raises(ConfigError, match="MAKEGOOD_LOG_FORMAT"):
        Settings.from_env({"MAKEGOOD_LOG_FORMAT": "xml"})


def test_no_message_formats_the_redis_url_itself():
    """Messages name Redis by `redis_address` or `redis_display`, never the URL (it may hold a
    password): `makegood status` once printed it whole."""
    from pathlib import Path
    import re
    root = Path(__file__).resolve().parents[3] / "streams"
    pattern = re.compile(r"\{[^{}]*redis_url[^{}]*\}")
    offenders = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
