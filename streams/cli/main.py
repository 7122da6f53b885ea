"""makegood: outage windows x entitlements x damage reports -> remedies, once.

Start with `makegood demo` (the reference incident end to end) or `makegood dev up`.
Every command honours MAKEGOOD_BOOTSTRAP, MAKEGOOD_REDIS_URL, MAKEGOOD_SCHEMA_REGISTRY_URL
(`none`: no registry), MAKEGOOD_SCHEMA_REGISTRY_AUTH_FILE, MAKEGOOD_POLICY and
MAKEGOOD_NAMESPACE (a prefix for topics, consumer group and Redis keys), and the client security
settings of streams/security.py (MAKEGOOD_KAFKA_*, MAKEGOOD_REDIS_USERNAME / _PASSWORD_FILE / _SSL_*)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from processors.errors import MakegoodError

from streams.cli.help import Formatter, command
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
    if args.acls or args.prune_acls:
        from streams.kafka.acls import acl_drift, create_acls, default_roles_file, load_roles, prune_acls, shown
        principals = {}
        for item in args.principal or ():
            role, sep, principal = item.partition("=")
            if not sep or ":" not in principal:
                print(f"makegood: --principal {item!r}: expected ROLE=User:name", file=sys.stderr)
                return 2
            principals[role] = principal
        roles_file = args.roles or default_roles_file(settings)
        roles = load_roles(roles_file, settings.topics_file, principals)
        create_acls(settings, roles)
        drift = acl_drift(settings, roles, settings.topics_file)
        if drift.stale and args.prune_acls:
            prune_acls(settings, drift.stale)
            for b in drift.stale:
                print(f"acls: removed {shown(b)} (not in {roles_file.name})")
        elif drift.stale:
            print(f"acls: {len(drift.stale)} ACL(s) on makegood's names are not in {roles_file.name}; "
                  f"`makegood topics create --prune-acls` removes them:", file=sys.stderr)
            for b in drift.stale:
                print(f"acls:   {shown(b)}", file=sys.stderr)
        for b in drift.wider:
            print(f"acls: left alone, wider than makegood's names (check it is meant): {shown(b)}", file=sys.stderr)
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("makegood")
    except PackageNotFoundError:   # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="makegood", description=__doc__, formatter_class=Formatter,
                                epilog="`makegood COMMAND --help` shows a command's options and examples.")
    p.add_argument("--version", action="version", version=f"makegood {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    dev = command(sub, "dev", help="start, stop or show the local Kafka broker, Redis server and schema registry",
                  examples=["makegood dev up        # start what is not running yet (reuses a running stack)",
                            "makegood dev status"])
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.set_defaults(func=_dev)
    topics = command(sub, "topics", help="create every topic of deploy/topics.yaml and register its schema (idempotent)",
                     examples=["makegood topics create",
                               "MAKEGOOD_NAMESPACE=test1 makegood topics create   # topics prefixed test1.",
                               "makegood topics create --acls        # and the roles' ACLs; lists ACLs the file does not grant",
                               "makegood topics create --prune-acls  # and removes those"])
    topics.add_argument("action", choices=["create"])
    topics.add_argument("--acls", action="store_true",
                        help="also create the ACLs of every role in the roles file (needs an admin principal)")
    topics.add_argument("--prune-acls", action="store_true",
                        help="--acls, and remove the ALLOW ACLs on makegood's topics, groups and transactional "
                             "ids that the roles file does not grant (they are listed either way)")
    topics.add_argument("--roles", type=Path, help="roles file (default: deploy/acls.yaml)")
    topics.add_argument("--principal", action="append", metavar="ROLE=User:NAME",
                        help="grant a role to this principal instead of the roles file's (repeatable)")
    topics.set_defaults(func=_topics)
    schemas = command(sub, "schemas", help="check schemas/*.avsc against the schema registry before publishing",
                      examples=["makegood schemas check"])
    schemas.add_argument("action", choices=["check"])
    schemas.set_defaults(func=_schemas)
    worker = command(sub, "worker", help="run one pipeline worker (start several to share partitions)",
                     examples=["makegood worker",
                               "MAKEGOOD_POLICY=deploy/policies/kakao-1015.yaml makegood worker --loglevel DEBUG"])
    worker.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    worker.set_defaults(func=_worker)
    demo = command(sub, "demo", help="the reference incident end to end on the local stack, with its report",
                   examples=["makegood demo", "makegood demo --scale 0.2 --workers 1   # a quicker, smaller run"])
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
    import streams.cli.incident as incident_commands
    incident_commands.register(sub)
    import streams.cli.support as support_commands
    support_commands.register(sub)
    import streams.cli.deadletters as deadletter_commands
    deadletter_commands.register(sub)
    import streams.cli.review as review_commands
    review_commands.register(sub)
    return p


def _redacted(text: str) -> str:
    """An error line with every configured secret (and any URL password) replaced by ***."""
    from streams.security import redact
    try:
        return Settings.from_env().redact(text)
    except MakegoodError:
        return redact(text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:        # bare `makegood`: the help page, not an argparse error
        parser.print_help()
        return 2
    try:
        return args.func(args, Settings.from_env())
    except MakegoodError as exc:
        print(f"makegood: {_redacted(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
