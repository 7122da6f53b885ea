"""streams/resources.py from a checkout: where schemas, topics, policies, Maven projects and state
live, and what a wheel would carry. The installed side is tests/integration/test_install.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from processors.policy import load_policy
from streams import resources
from streams.errors import ConfigError
from streams.kafka.topics import load_topic_specs
from streams.settings import ROOT, Settings

REPO = Path(__file__).resolve().parents[2]


def test_a_checkout_reads_its_own_files_and_keeps_state_in_dot_stack():
    assert not resources.installed()
    assert resources.data_root() == REPO == ROOT
    s = Settings.from_env(env={})
    assert s.state_dir == REPO / ".stack"
    assert s.schemas_dir == REPO / "schemas" and s.topics_file == REPO / "deploy" / "topics.yaml"
    assert load_topic_specs(s.topics_file) and load_policy(str(s.policy_path)).version


def test_state_dir_setting_wins(tmp_path):
    assert Settings.from_env(env={"MAKEGOOD_STATE_DIR": str(tmp_path)}).state_dir == tmp_path


def test_a_policy_is_a_path_or_the_name_of_a_shipped_one(tmp_path):
    named = Settings.from_env(env={"MAKEGOOD_POLICY": "whatif-5day"}).policy_path
    assert named == REPO / "deploy" / "policies" / "whatif-5day.yaml"
    own = tmp_path / "mine.yaml"
    assert Settings.from_env(env={"MAKEGOOD_POLICY": str(own)}).policy_path == own
    assert Settings.from_env(env={"MAKEGOOD_POLICY": "x/y"}).policy_path == Path("x/y")
    with pytest.raises(ConfigError, match="no policy named 'kakao-2099'.*kakao-1015, whatif-5day"):
        Settings.from_env(env={"MAKEGOOD_POLICY": "kakao-2099"})


def test_what_a_wheel_carries_is_every_runtime_file_and_nothing_else(tmp_path):
    shipped = {str(p) for p in resources.shipped_files(REPO)}
    # every schema, the older versions the codec still reads (schemas/history/) included
    assert {str(p.relative_to(REPO)) for p in (REPO / "schemas").rglob("*.avsc")} <= shipped
    assert any(p.startswith("schemas/history/") for p in shipped)
    assert {"deploy/topics.yaml", "deploy/kafka/pom.xml", "deploy/registry/pom.xml",
            "deploy/registry/settings.xml", "deploy/policies/kakao-1015.yaml"} <= shipped
    # every file the registry's Maven build reads (the build itself: tests/integration/test_install.py)
    assert any(p.endswith(".java") for p in shipped) and any(p.endswith(".list") for p in shipped)
    assert not any(p.startswith(("deploy/production", "tests", "bench", ".stack")) or "/target/" in p
                   for p in shipped)
    # a stray key, build output or note next to shipped files stays out
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "a.avsc").write_text("{}")
    (tmp_path / "schemas" / "notes.txt").write_text("x")
    (tmp_path / "deploy" / "registry" / "app" / "target").mkdir(parents=True)
    (tmp_path / "deploy" / "registry" / "app" / "pom.xml").write_text("<project/>")
    (tmp_path / "deploy" / "registry" / "app" / "target" / "pom.xml").write_text("<project/>")
    (tmp_path / "deploy" / "registry" / "client.key").write_text("-----BEGIN PRIVATE KEY-----")
    assert [str(p) for p in resources.shipped_files(tmp_path)] == ["deploy/registry/app/pom.xml", "schemas/a.avsc"]


def test_a_checkout_builds_maven_projects_in_place(tmp_path):
    assert resources.maven_project("kafka", tmp_path) == REPO / "deploy" / "kafka"
    assert resources.sync_maven_project("registry", tmp_path) == REPO / "deploy" / "registry"
    assert not any(tmp_path.iterdir())      # nothing copied


def test_an_installed_package_builds_from_a_copy_under_the_state_dir(tmp_path, monkeypatch):
    """The installed branch without installing: package data in a temp dir."""
    data = tmp_path / "data"
    (data / "deploy" / "kafka").mkdir(parents=True)
    (data / "deploy" / "kafka" / "pom.xml").write_text("<project>1</project>")
    monkeypatch.setattr(resources, "packaged_root", lambda: data)
    state = tmp_path / "state"
    assert resources.maven_project("kafka", state) == state / "build" / "kafka"
    copy = resources.sync_maven_project("kafka", state)
    assert (copy / "pom.xml").read_text() == "<project>1</project>"
    (copy / "target" / "libs").mkdir(parents=True)
    resources.sync_maven_project("kafka", state)
    assert (copy / "target" / "libs").is_dir(), "an unchanged project keeps its build"
    (data / "deploy" / "kafka" / "pom.xml").write_text("<project>2</project>")
    resources.sync_maven_project("kafka", state)
    assert (copy / "pom.xml").read_text() == "<project>2</project>"
    assert not (copy / "target").exists(), "a changed project is built again"
    # state: XDG_STATE_HOME, else ~/.local/state; never the package
    assert resources.default_state_dir({"XDG_STATE_HOME": "/x"}) == Path("/x/makegood")
    assert resources.default_state_dir({"HOME": "/h"}) == Path("/h/.local/state/makegood")
    assert Settings.from_env(env={"HOME": "/h"}).state_dir == Path("/h/.local/state/makegood")
