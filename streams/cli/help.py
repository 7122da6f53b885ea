"""How every `makegood` subcommand registers its parser: with a help line and worked examples.

Each module that adds a subcommand calls `command(sub, name, help=..., examples=[...])` where
it registers it, so the example lives beside the options it shows. `tests/unit/cli/test_help.py`
walks the whole parser tree and fails for any subcommand (nested ones too) whose `--help` has no
example, so a subcommand added later must bring one.
"""
from __future__ import annotations

import argparse
from typing import Any, Sequence

EXAMPLES_HEADING = "examples:"


class Formatter(argparse.HelpFormatter):
    """Wraps one-paragraph text as usual; keeps text that has its own line breaks as written
    (module docstrings used as descriptions, and the examples block)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text.strip():
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def examples_epilog(examples: Sequence[str]) -> str:
    """The `examples:` block of a --help page: one command line (with an optional `# note`) each."""
    lines = [e for e in (x.strip() for x in examples) if e]
    if not lines:
        raise ValueError("a makegood subcommand needs at least one example")
    return EXAMPLES_HEADING + "\n" + "\n".join(f"  {line}" for line in lines) + "\n"


def command(sub: Any, name: str, *, help: str, examples: Sequence[str],
            description: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """Add subcommand `name` to the subparsers `sub`, with its examples as the epilog."""
    return sub.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                          epilog=examples_epilog(examples), formatter_class=Formatter, **kwargs)


def subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every subcommand parser under `parser`, nested ones included, with its command path."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out.append((path + (name,), child))
                out.extend(subcommands(child, path + (name,)))
    return out
