"""Build hook: the wheel carries schemas/ and deploy/ files as package data.

Everything else about the package is in pyproject.toml. The files stay where the repo keeps
them; building a wheel copies the ones `streams.resources.SHIPPED` names into
`streams/_data/` of the build, where `streams.resources` finds them through importlib.resources.
An editable install copies nothing: it reads the checkout.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _constant(name: str):
    """A literal constant of streams/resources.py, read without importing the package."""
    tree = ast.parse((HERE / "streams" / "resources.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError(f"streams/resources.py defines no {name}")


def shipped_files() -> list[Path]:
    skip = set(_constant("NOT_SHIPPED_PARTS"))
    found: set[Path] = set()
    for pattern in _constant("SHIPPED"):
        for path in HERE.glob(pattern):
            rel = path.relative_to(HERE)
            if path.is_file() and not skip.intersection(rel.parts):
                found.add(rel)
    if not any(rel.suffix == ".avsc" for rel in found) or Path("deploy/topics.yaml") not in found:
        raise RuntimeError("schemas/ or deploy/topics.yaml missing: build from a complete checkout or sdist")
    return sorted(found)


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        data = Path(self.build_lib) / "streams" / _constant("PACKAGE_DATA")
        shutil.rmtree(data, ignore_errors=True)    # nothing left over from an earlier build
        for rel in shipped_files():
            dest = data / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / rel, dest)


setup(cmdclass={"build_py": BuildWithData})
