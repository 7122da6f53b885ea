"""Where makegood's files that are not Python live, in a checkout and in an installed wheel.

The repo keeps them where people edit them: `schemas/*.avsc` (and `schemas/history/`, the
older versions the codec still reads), `deploy/topics.yaml`,
`deploy/policies/*.yaml`, and the local stack's Maven projects `deploy/kafka/` and
`deploy/registry/`. A wheel carries the same tree as package data under `streams/_data/`
(setup.py copies it there at build time), read through `importlib.resources`. `data_root()`
is the directory holding `schemas/` and `deploy/`: the package data when it is installed, the
checkout otherwise (an editable install reads the checkout, so edits show at once).

State (the local stack's data, worker folders, demo reports, Maven build output) never goes
into either: `.stack/` in a checkout, a per-user state directory for an installed package
(`default_state_dir`), or MAKEGOOD_STATE_DIR.
"""
from __future__ import annotations

import filecmp
import os
import shutil
from importlib import resources
from pathlib import Path

from streams.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE_DATA = "_data"        # streams/_data/ in a wheel, absent from a checkout
# What the wheel carries, relative to data_root() (setup.py and the wheel test read this list).
# By suffix, never "everything under deploy/": a key or a note left in a folder stays out.
SHIPPED = ("schemas/*.avsc", "schemas/history/*.avsc", "deploy/topics.yaml", "deploy/acls.yaml", "deploy/policies/*.yaml",
           "deploy/kafka/pom.xml", "deploy/registry/settings.xml", "deploy/registry/**/pom.xml", "deploy/registry/**/src/main/**/*.java",
           "deploy/registry/**/src/main/resources/META-INF/*.list")
# never shipped, even when found under a shipped folder (Maven output, editor and OS droppings)
NOT_SHIPPED_PARTS = ("target", "__pycache__", ".DS_Store")


def packaged_root() -> Path | None:
    """streams/_data of an installed wheel, or None (a checkout or an editable install)."""
    data = resources.files("streams") / PACKAGE_DATA
    if not data.is_dir():
        return None
    if not isinstance(data, Path):
        # zipimport and other loaders without a file system: Maven, redis-server and the
        # worker's state folders need real paths, and a zipped makegood is not supported.
        raise ConfigError("makegood's package data is not on the file system (installed as a zip?): "
                          "install the wheel with pip")
    return data


def installed() -> bool:
    """Whether makegood runs from an installed wheel rather than from a checkout."""
    return packaged_root() is not None


def data_root() -> Path:
    """The directory holding `schemas/` and `deploy/`."""
    packaged = packaged_root()
    if packaged is not None:
        return packaged
    if (CHECKOUT / "deploy" / "topics.yaml").is_file():
        return CHECKOUT
    raise ConfigError(f"makegood's data files (schemas/, deploy/) are missing from {CHECKOUT}: "
                      "reinstall the makegood wheel")


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    """`.stack/` in a checkout; for an installed package $XDG_STATE_HOME/makegood
    (~/.local/state/makegood), never site-packages. MAKEGOOD_STATE_DIR overrides both (Settings)."""
    if not installed():
        return CHECKOUT / ".stack"
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "state")
    return Path(base) / "makegood"


def policy_file(name: str) -> Path:
    """A policy that ships with makegood, by name (`kakao-1015`, `whatif-5day`)."""
    path = data_root() / "deploy" / "policies" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (data_root() / "deploy" / "policies").glob("*.yaml"))
        raise ConfigError(f"no policy named {name!r} ships with makegood (known: {', '.join(known)}); "
                          "give a path to a policy file instead")
    return path


def shipped_files(root: Path) -> list[Path]:
    """The files under `root` (a checkout) that a wheel carries, relative to it, sorted."""
    found: set[Path] = set()
    for pattern in SHIPPED:
        for path in root.glob(pattern):
            rel = path.relative_to(root)
            if path.is_file() and not any(part in NOT_SHIPPED_PARTS for part in rel.parts):
                found.add(rel)
    return sorted(found)


def maven_project(name: str, state_dir: Path) -> Path:
    """Where the local stack builds `deploy/<name>/` (kafka, registry) with Maven.

    In a checkout that is the project itself (its `target/` is git-ignored). An installed
    package's files may be read-only and are shared by every user, so the project is built
    from a copy under the state directory; `sync_maven_project` refreshes that copy."""
    if not installed():
        return data_root() / "deploy" / name
    return state_dir / "build" / name


def sync_maven_project(name: str, state_dir: Path) -> Path:
    """Bring the build copy of `deploy/<name>/` up to date with the installed files (a no-op
    in a checkout) and return it. A copy that changed (a new makegood version) loses its old
    Maven output, so the next `dev up` builds the new one instead of running stale jars."""
    source = data_root() / "deploy" / name
    target = maven_project(name, state_dir)
    if target == source:
        return target
    changed = False
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or any(part in NOT_SHIPPED_PARTS for part in rel.parts):
            continue
        dest = target / rel
        if dest.is_file() and filecmp.cmp(path, dest, shallow=False):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        changed = True
    if changed:
        for old in target.rglob("target"):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return target
