"""The `makegood` command."""
from __future__ import annotations

import argparse
import sys

from processors.errors import MakegoodError

from .settings import Settings


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from . import devstack
    if args.action == "up":
        devstack.stack_up(settings)
    elif args.action == "down":
        devstack.stack_down(settings)
    else:
        for s in devstack.stack_status(settings):
            state = "running" if s.running else "stopped"
            answers = "answers" if s.answers else "does not answer"
            pid = f"pid {s.pid}" if s.pid else "no pid"
            print(f"{s.name:6} {state:8} {pid:11} {s.address:22} {answers}{'  ' + s.note if s.note else ''}")
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from .topics import create_topics
    create_topics(settings)
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from .app import run_worker
    run_worker(settings, loglevel=args.loglevel)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="makegood", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = sub.add_parser("dev", help="start, stop or show the local Kafka broker and Redis server")
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.set_defaults(func=_dev)
    topics = sub.add_parser("topics", help="create every topic of deploy/topics.yaml (idempotent)")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=_topics)
    worker = sub.add_parser("worker", help="run one pipeline worker (start several to share partitions)")
    worker.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    worker.set_defaults(func=_worker)
    from . import io_commands
    io_commands.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        return args.func(args, settings)
    except MakegoodError as exc:
        print(f"makegood: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
