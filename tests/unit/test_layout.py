"""The shape of streams/ (docs/architecture.md): no import cycle, no worker module reaching
back into the app that wires it, and modules small enough to read in one sitting."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "streams").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, known: set[str]) -> set[str]:
    """The streams modules a module imports, anywhere in it (deferred imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in known)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, known) - {name} for name, path in mods.items()}


def test_streams_has_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_only_the_cli_and_dev_tools_import_the_worker_app():
    graph = _graph()
    importers = {n for n, deps in graph.items() if "streams.worker.app" in deps}
    assert importers <= {"streams.cli.main"}, importers


def test_lower_layers_never_import_higher_ones():
    """kafka/ and wire/ know nothing of decisions; decide/ and ledger/ nothing of the worker,
    the replay, the report, the dev tools or the CLI; ops/ nothing of what it observes."""
    graph = _graph()
    below = {"streams.kafka": {"streams.decide", "streams.ledger", "streams.worker", "streams.replay",
                               "streams.report", "streams.dev", "streams.cli", "streams.wire"},
             "streams.wire": {"streams.decide", "streams.ledger", "streams.worker", "streams.replay",
                              "streams.report", "streams.dev", "streams.cli"},
             "streams.decide": {"streams.worker", "streams.replay", "streams.report", "streams.dev", "streams.cli"},
             "streams.ledger": {"streams.worker", "streams.replay", "streams.report", "streams.dev", "streams.cli"},
             # metrics, health, the HTTP endpoint and logging are generic: the worker wires them
             "streams.ops": {"streams.decide", "streams.ledger", "streams.worker", "streams.replay",
                             "streams.report", "streams.dev", "streams.cli", "streams.kafka", "streams.wire"}}
    for name, deps in graph.items():
        for pkg, forbidden in below.items():
            if name == pkg or name.startswith(pkg + "."):
                bad = {d for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden)}
                assert not bad, f"{name} imports {sorted(bad)}"


def test_modules_stay_readable():
    long = {str(p.relative_to(ROOT)): n for p in [*(ROOT / "streams").rglob("*.py"), *(ROOT / "processors").rglob("*.py")]
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
