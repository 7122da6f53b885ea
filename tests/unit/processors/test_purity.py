"""processors/ stays pure: no I/O frameworks, no asyncio, no clock reads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROCESSORS = Path(__file__).resolve().parents[3] / "processors"
FILES = sorted(PROCESSORS.glob("*.py"))
FORBIDDEN_MODULES = {"streams", "confluent_kafka", "aiokafka", "faust", "redis", "asyncio"}
CLOCK_CALLS = {("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("datetime", "now"),
               ("datetime", "utcnow"), ("date", "today"), ("datetime", "today")}


def test_there_are_files_to_check():
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_forbidden_imports(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_clock_reads(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute):
            owner = node.value
            owner_name = owner.id if isinstance(owner, ast.Name) else (
                owner.attr if isinstance(owner, ast.Attribute) else None)
            assert (owner_name, node.attr) not in CLOCK_CALLS, f"{path.name}:{node.lineno} reads the clock"
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            imported = {a.name for a in node.names}
            assert not imported & {"time", "time_ns", "monotonic"}, path.name
