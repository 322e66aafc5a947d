"""The ``mailmerger`` command: run the system, one service, migrations, the gateway config."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mailmerger.listeners import PortUnavailable
from mailmerger.preflight import StartupError
from mailmerger.services import SERVICES
from mailmerger_shared.settings import (
    Deployment,
    LogSettings,
    SettingsError,
    environment,
    load,
    unknown_variables,
)
from mailmerger_shared.tracing import TracingSettings, configure_tracing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailmerger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="the all-in-one mode: every service, the workers, local stand-ins")
    split = commands.add_parser(
        "run-split", help="every service, worker and stand-in as its own process behind nginx (as compose)"
    )
    split.add_argument("--port", type=int, default=8080, help="the gateway's port on 127.0.0.1")
    split.add_argument("--state", type=Path, help="write each process's pid and port here (JSON)")
    split.add_argument(
        "--scale",
        action="append",
        default=[],
        metavar="PROCESS=N",
        help="run N of a process (as compose --scale), e.g. --scale sender-worker=4",
    )
    serve = commands.add_parser(
        "serve", help="serve one service's HTTP app (as python -m mailmerger_<service>)"
    )
    serve.add_argument("service", choices=SERVICES)
    worker = commands.add_parser("worker", help="run a background worker: dispatcher, or sender (its worker)")
    worker.add_argument("name")
    migrate = commands.add_parser("migrate", help="create the database if needed and migrate schemas")
    migrate.add_argument("service", nargs="?", default="all")
    revision = commands.add_parser("makemigrations", help="autogenerate a migration for one service")
    revision.add_argument("service")
    revision.add_argument("-m", "--message", required=True)
    deploy = commands.add_parser("deploy", help="print a deployment file generated from the prefix table")
    deploy.add_argument("kind", choices=["nginx", "k8s", "compose"])
    commands.add_parser("config", help="print every environment variable with its default (Markdown)")
    emulator = commands.add_parser("emulator", help="run a local stand-in for an external service")
    emulator.add_argument("which", choices=["google"])
    commands.add_parser(
        "rekey", help="re-seal every stored secret under MM_AUTH_ENCRYPTION_ACTIVE_KEY (a key rotation)"
    )
    from mailmerger import account_cli, demo, mailmerge_cli, webhook_listener

    demo.add_arguments(commands.add_parser("demo", help="a first campaign against a running `make run`"))
    account_cli.add_login_arguments(
        commands.add_parser("login", help="sign up (--sign-up) or log in; the session is kept for the CLI")
    )
    account_cli.add_connect_arguments(
        commands.add_parser("connect", help="connect a Gmail account (opens Google's consent page)")
    )
    mailmerge_cli.add_arguments(
        commands.add_parser("send", help="mail merge a template with a CSV (dry run unless --no-dry-run)")
    )
    webhook_listener.add_arguments(
        commands.add_parser("webhooks", help="webhook tools: `listen` verifies and prints deliveries")
    )
    return parser


# Commands that read settings: a misspelled MM_ variable is worth a warning before they start.
_READ_SETTINGS = {"run", "run-split", "serve", "worker", "migrate", "makemigrations", "emulator", "rekey"}
# MM_ variables that are no setting of the system (the test suite's infrastructure).
_NOT_SETTINGS_PREFIXES = ("MM_TEST_",)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command in _READ_SETTINGS:
            warn_unknown_variables()
        return _dispatch(args)
    except SettingsError as exc:
        print(f"mailmerger: {exc}", file=sys.stderr)
        print("Set these variables (see .env.example) and start again.", file=sys.stderr)
        return 2
    except (StartupError, PortUnavailable) as exc:
        print(f"mailmerger: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def warn_unknown_variables() -> None:
    from mailmerger.configuration import variables

    env = {
        name: value for name, value in environment().items() if not name.startswith(_NOT_SETTINGS_PREFIXES)
    }
    for warning in unknown_variables(env, (variable.name for variable in variables())):
        print(f"mailmerger: warning: {warning}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    from mailmerger_shared.logs import configure_logging

    if args.command == "deploy":
        if args.kind == "nginx":
            from mailmerger.gateway import render_nginx

            print(render_nginx(), end="")
        elif args.kind == "compose":
            from mailmerger import compose

            print(compose.render(), end="")
        else:
            from mailmerger import k8s

            print(k8s.render(), end="")
        return 0
    if args.command in ("serve", "worker"):
        # The same launcher as `python -m mailmerger_<service> [worker]`.
        from mailmerger.services import find_worker, registry
        from mailmerger_shared.serving import main as launch

        if args.command == "serve":
            launch(registry()[args.service], [])
        else:
            service, worker = find_worker(args.name)
            launch(service, [worker])
        return 0
    if args.command == "run-split":
        from mailmerger.split import run_split

        try:
            replicas = {name: int(count) for name, count in (item.split("=", 1) for item in args.scale)}
        except ValueError:
            print("mailmerger run-split: --scale takes PROCESS=N, e.g. sender-worker=4", file=sys.stderr)
            return 2
        return run_split(args.port, args.state, replicas)
    if args.command == "demo":
        from mailmerger import demo

        return demo.run(args)
    if args.command == "send":
        from mailmerger import mailmerge_cli

        return mailmerge_cli.run(args)
    if args.command in ("login", "connect"):
        from mailmerger import account_cli

        return account_cli.run(args.command, args)
    if args.command == "webhooks":
        from mailmerger import webhook_listener

        return webhook_listener.run(args)
    if args.command == "rekey":
        from mailmerger.rekey import rekey

        return rekey()
    if args.command == "config":
        from mailmerger.configuration import markdown

        print(markdown(), end="")
        return 0
    if args.command == "run":
        from mailmerger.serve import run_all_in_one

        # Its /metrics serves the one registry every service of the process shares.
        return run_all_in_one()
    configure_logging(load(LogSettings), service=f"mailmerger-{args.command}")
    configure_tracing(load(TracingSettings), service=f"mailmerger-{args.command}")
    if args.command == "migrate":
        from mailmerger.migrate import migrate

        development = load(Deployment).development
        if development:  # `make run`'s first step: one line, not alembic's step by step
            for logger in ("alembic", "mailmerger.migrate"):
                logging.getLogger(logger).setLevel(logging.WARNING)
        migrated = asyncio.run(migrate(args.service))
        if development:
            print(f"database migrated: {', '.join(migrated)}")
        return 0
    if args.command == "makemigrations":
        from mailmerger.migrate import make_migration

        make_migration(args.service, args.message)
        return 0
    if args.command == "emulator":
        from mailmerger.serve import serve_google_emulator

        serve_google_emulator()
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
