"""`makegood publish` and `makegood consume` (JSON lines in and out)."""
from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the publish/consume sub-commands to the makegood parser."""
