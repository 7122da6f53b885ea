"""Every subcommand's --help shows an example; bare `makegood` and `--version` behave."""
import subprocess
import sys

import pytest

from streams.cli.help import EXAMPLES_HEADING, command, examples_epilog, subcommands
from streams.cli.main import _version, build_parser, main


def test_every_subcommand_has_an_example():
    found = subcommands(build_parser())
    assert {path[0] for path, _ in found} >= {"dev", "topics", "demo", "publish", "consume", "report",
                                              "replay", "ledger", "status", "deadletters"}
    missing = []
    for path, parser in found:
        text = parser.format_help()
        after = text.split(EXAMPLES_HEADING, 1)[1] if EXAMPLES_HEADING in text else ""
        if "makegood " + " ".join(path) not in after:
            missing.append(" ".join(path))
    assert not missing, f"subcommands whose --help has no `makegood ...` example: {missing}"


def test_a_command_cannot_be_registered_without_an_example():
    import argparse
    sub = argparse.ArgumentParser().add_subparsers()
    with pytest.raises(ValueError):
        command(sub, "x", help="does x", examples=[])
    assert examples_epilog(["makegood x"]).startswith(EXAMPLES_HEADING)


def test_examples_keep_their_lines(capsys):
    with pytest.raises(SystemExit) as done:
        main(["replay", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "\nexamples:\n  makegood replay damage.reports.v1 --from" in out
    assert "--from/--to select by record timestamp" in " ".join(out.split())   # descriptions still wrap
    assert max(len(line) for line in out.split("examples:")[0].splitlines()) <= 100


def test_bare_makegood_prints_help_not_an_error(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: makegood") and "COMMAND" in captured.out and "status" in captured.out
    assert "error" not in captured.err


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version
    done = subprocess.run([sys.executable, "-m", "streams.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"makegood {version('makegood')}"
    assert _version() == version("makegood")
