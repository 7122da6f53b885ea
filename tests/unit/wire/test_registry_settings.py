"""#14: the registry's settings (read only in streams/settings.py) and the local registry's status."""
from __future__ import annotations

import pytest

from streams.dev.registry import LocalRegistry
from streams.errors import ConfigError
from streams.settings import DEFAULT_SCHEMA_REGISTRY_URL, Settings


def test_the_local_registry_is_the_default_and_none_turns_it_off():
    s = Settings.from_env({})
    assert s.schema_registry_url == DEFAULT_SCHEMA_REGISTRY_URL and s.uses_local_registry
    assert s.schema_registry_config() == {"url": DEFAULT_SCHEMA_REGISTRY_URL}
    off = Settings.from_env({"MAKEGOOD_SCHEMA_REGISTRY_URL": "none"})
    assert off.schema_registry_url == "" and off.schema_registry_config() == {}
    assert off.schema_registry_display == "none"


def test_subjects_follow_the_topic_name_strategy_under_the_namespace():
    assert Settings.from_env({}).subject("remedy.actions.v1") == "remedy.actions.v1-value"
    assert Settings.from_env({}, namespace="t1").subject("remedy.actions.v1") == "t1.remedy.actions.v1-value"


def test_credentials_come_from_a_file_and_are_never_shown(tmp_path):
    secret = tmp_path / "registry-auth"
    secret.write_text("billing:s3cr3t-pw\n")
    s = Settings.from_env({"MAKEGOOD_SCHEMA_REGISTRY_URL": "https://ops:url-pw@sr.example:8081/",
                           "MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE": str(secret)})
    assert s.schema_registry_config() == {"url": "https://ops:url-pw@sr.example:8081",
                                          "basic.auth.user.info": "billing:s3cr3t-pw"}
    assert "s3cr3t" not in repr(s) and "url-pw" not in repr(s)
    assert s.schema_registry_display == "https://ops:***@sr.example:8081"
    status = LocalRegistry(s).status()
    assert "url-pw" not in status.address and status.note.startswith("external")


def test_an_unreadable_or_empty_auth_file_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE: cannot read"):
        Settings.from_env({"MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE": str(tmp_path / "missing")})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        Settings.from_env({"MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE": str(tmp_path / "empty")})
