"""`makegood report INCIDENT_ID [--html FILE] [--json]`: what an incident cost, and how fast.

Times are in the incident's time zone (the policy's `timezone`) unless --utc. Text goes to stdout; `--html` also writes a self-contained page; `--json` prints the summary as
JSON instead of text (for dashboards and diffs between runs). Reads the topics without a
consumer group, so it is safe to run against a live pipeline at any time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streams.cli.help import command
from streams.wire.framing import CLI_OUTAGE_WAIT, open_codec
from streams.errors import ReportError, UnknownIncident
from streams.report.collect import collect, to_json
from streams.report.text import render_text
from streams.settings import Settings


def _report(args: argparse.Namespace, settings: Settings) -> int:
    codec = open_codec(settings, outage_wait=CLI_OUTAGE_WAIT)
    try:
        report = collect(settings, codec, args.incident_id)
    except UnknownIncident as exc:
        where = f" in namespace {settings.namespace!r}" if settings.namespace else ""
        print(f"makegood report: {exc}{where}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(to_json(report), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_text(report, utc=args.utc))
    if args.html is not None:
        from streams.report.html import render_html
        path = Path(args.html)
        try:
            path.write_text(render_html(report, utc=args.utc), encoding="utf-8")
        except OSError as exc:
            raise ReportError(f"cannot write {path}: {exc.strerror}") from None
        # on stderr when stdout is JSON, so the JSON stays parseable
        print(f"HTML report written to {path.resolve()}", file=sys.stderr if args.json else sys.stdout)
    return 0


def register(sub: Any) -> None:
    """Add the `report` command to the `makegood` subparsers."""
    p = command(sub, "report", help="print an incident's remedies, money, reviews, dead letters and timing",
                description=__doc__,
                examples=["makegood report INC-20221015-PANGYO",
                          "makegood report INC-20221015-PANGYO --html report.html   # also a page for the billing lead",
                          "makegood report INC-20221015-PANGYO --json | jq .totals"])
    p.add_argument("incident_id", metavar="INCIDENT_ID", help="e.g. INC-20221015-PANGYO")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with charts")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    p.add_argument("--utc", action="store_true",
                   help="times in UTC instead of the incident's time zone (the policy's `timezone`, KST for the reference)")
    p.set_defaults(func=_report)
