"""makegood: outage windows x entitlements x damage reports -> remedies, once.

Start with `makegood demo` (the reference incident end to end) or `makegood dev up`.
Every command honours MAKEGOOD_BOOTSTRAP, MAKEGOOD_REDIS_URL, MAKEGOOD_SCHEMA_REGISTRY_URL
(`none`: no registry), MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE, MAKEGOOD_POLICY and
MAKEGOOD_NAMESPACE (a prefix for topics, consumer group and Redis keys)."""
from __future__ import annotations

import argparse
import sys

from processors.errors import MakegoodError

from streams.settings import Settings


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    import streams.dev.stack as devstack
    if args.action == "up":
        devstack.stack_up(settings)
    elif args.action == "down":
        devstack.stack_down(settings)
    else:
        for s in devstack.stack_status(settings):
            state = "running" if s.running else "stopped"
            answers = "answers" if s.answers else "does not answer"
            pid = f"pid {s.pid}" if s.pid else "no pid"
            print(f"{s.name:8} {state:8} {pid:11} {s.address:22} {answers}{'  ' + s.note if s.note else ''}")
    return 0


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka.topics import create_topics
    from streams.wire.framing import register_schemas
    create_topics(settings)
    register_schemas(settings)
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from streams.wire.framing import check_schemas
    results = check_schemas(settings)
    for name, subject, verdict in results:
        print(f"{name:18} {subject:40} {verdict}")
    bad = [r for r in results if r[2] == "INCOMPATIBLE"]
    if bad:
        print(f"makegood: {len(bad)} schema(s) not BACKWARD compatible with {settings.schema_registry_display}: "
              "add fields with defaults, never remove or retype one without a default", file=sys.stderr)
    return 1 if bad else 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker.app import run_worker
    return run_worker(settings, loglevel=args.loglevel)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dev.demo import run_demo
    return run_demo(settings, scale=args.scale, workers=args.workers, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="makegood", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = sub.add_parser("dev", help="start, stop or show the local Kafka broker, Redis server and schema registry")
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.set_defaults(func=_dev)
    topics = sub.add_parser("topics", help="create every topic of deploy/topics.yaml and register its schema (idempotent)")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=_topics)
    schemas = sub.add_parser("schemas", help="check schemas/*.avsc against the schema registry before publishing")
    schemas.add_argument("action", choices=["check"])
    schemas.set_defaults(func=_schemas)
    worker = sub.add_parser("worker", help="run one pipeline worker (start several to share partitions)")
    worker.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    worker.set_defaults(func=_worker)
    demo = sub.add_parser("demo", help="the reference incident end to end on the local stack, with its report")
    demo.add_argument("--scale", type=float, default=1.0, help="1.0 = 3,000 entitlements and 1,500 reports")
    demo.add_argument("--workers", type=int, default=2, help="worker processes sharing the partitions")
    demo.add_argument("--seed", type=int, default=1015)
    demo.set_defaults(func=_demo)
    import streams.cli.io as io_commands
    import streams.cli.report as report_commands
    io_commands.register(sub)
    report_commands.register(sub)
    import streams.cli.ops as ops_commands
    ops_commands.register(sub)
    import streams.cli.review as review_commands
    review_commands.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Settings.from_env())
    except MakegoodError as exc:
        print(f"makegood: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
