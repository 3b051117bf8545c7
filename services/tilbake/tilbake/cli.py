"""`tilbake`: the operator and developer command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Only what building the parser needs is imported here: each command imports the services, FastAPI
# or SQLAlchemy itself, so `tilbake token` and `tilbake --help` answer at once.
from shared.minting import Role
from shared.settings import REPO_ROOT

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def settings_classes() -> list[tuple[str, type[ServiceSettings]]]:
    import agreement_api.config
    import case_api.config
    import notify_worker.config

    return [
        ("case-api", case_api.config.Settings),
        ("agreement-api", agreement_api.config.Settings),
        ("notify-worker", notify_worker.config.Settings),
    ]


def configuration_table() -> str:
    """The README's configuration table, generated from the settings classes."""
    from shared.settings import settings_fields

    lines = ["| service | variable | default | meaning |", "|---|---|---|---|"]
    for service, cls in settings_classes():
        for variable, default, description in settings_fields(cls):
            shown = f"`{default}`" if default else ""
            lines.append(f"| {service} | `{variable}` | {shown} | {description} |")
    return "\n".join(lines)


def openapi_documents() -> dict[str, str]:
    """Each service's OpenAPI document as stable, pretty JSON."""
    # The apps (and the seed and the runner below) are imported where they are used, so that
    # `tilbake token` and `tilbake config-table` do not load three FastAPI applications.
    import agreement_api.config
    import agreement_api.main
    import case_api.config
    import case_api.main
    import notify_worker.config
    import notify_worker.main

    apps = {
        "case-api": case_api.main.create_app(case_api.config.Settings(env="test")),
        "agreement-api": agreement_api.main.create_app(agreement_api.config.Settings(env="test")),
        "notify-worker": notify_worker.main.create_app(notify_worker.config.Settings(env="test")),
    }
    return {
        name: json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, app in apps.items()
    }


def _seed_directory(database_url: str | None) -> int:
    import asyncio
    import os

    from agreement_api import seed
    from shared.db import create_engine, create_sessionmaker, unit_of_work
    from shared.settings import normalize_database_url

    url = database_url or os.environ.get("AGREEMENT_API_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        print("Set --database-url, AGREEMENT_API_DATABASE_URL or DATABASE_URL", file=sys.stderr)
        return 2
    interactive = sys.stderr.isatty()

    def progress(stage: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // total
        line = f"{stage:<18} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        if interactive:
            print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif done == total or done % 50 == 0:
            print(line, file=sys.stderr, flush=True)

    async def run() -> dict[str, int]:
        engine = create_engine(normalize_database_url(url))
        try:
            async with unit_of_work(create_sessionmaker(engine)) as session:
                return await seed.load_directory(session, progress=progress)
        finally:
            await engine.dispose()

    created = asyncio.run(run())
    print("created: " + ", ".join(f"{count} {kind}(s)" for kind, count in created.items()))
    return 0


def _dead_letters(queue: str, amqp_url: str | None, *, redrive: bool, limit: int | None) -> int:
    import asyncio
    import os

    from shared.bus import RabbitMQBus

    url = amqp_url or os.environ.get("AMQP_URL")
    if not url:
        print("Set --amqp-url or AMQP_URL", file=sys.stderr)
        return 2

    async def run() -> None:
        bus = RabbitMQBus(url)
        try:
            if redrive:
                moved = await bus.redrive(queue, limit=limit)
                print(f"{queue}: {moved} dead letter(s) sent back")
                return
            found = await bus.dead_letters(queue, limit=limit or 20)
            print(f"{queue}.dead: {found.count} message(s)")
            for item in found.items:
                print(f"  {item.occurred_at}  {item.type}  {item.subject}  {item.event_id}  ({item.reason})")
        finally:
            await bus.close()

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: every command and option, each with its help text."""
    parser = argparse.ArgumentParser(prog="tilbake", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    embedded = commands.add_parser(
        "embedded", help="run all services in one process (SQLite, in-process bus)"
    )
    embedded.add_argument(
        "--host", default="127.0.0.1", help="address the services listen on (default %(default)s)"
    )
    embedded.add_argument(
        "--base-port",
        type=int,
        default=8001,
        help="case-api's port; agreement-api and notify-worker take the next two (default %(default)s)",
    )
    embedded.add_argument(
        "--data-dir", type=Path, default=None, help="where the SQLite file lives (default ./var)"
    )
    embedded.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="lowest level logged: %(choices)s (default %(default)s)",
    )

    token = commands.add_parser("token", help="mint a development token signed with the dev key")
    token.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        metavar="ROLE",
        help="the role the token carries: %(choices)s",
    )
    token.add_argument("--org", default=None, help="organization id the caller acts for")
    token.add_argument("--orgno", default=None, help="consumer organization number (9 digits)")
    token.add_argument(
        "--sub", default="dev-user", help="the token's subject, the caller (default %(default)s)"
    )
    token.add_argument(
        "--scope",
        action="append",
        default=[],
        help="a scope the token grants; repeat for several (default none)",
    )
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default %(default)s)")

    commands.add_parser("config-table", help="print the configuration table (Markdown)")

    seed = commands.add_parser(
        "seed-directory",
        help="load regions, units and every current municipality into agreement-api's database",
    )
    seed.add_argument(
        "--database-url", default=None, help="default: AGREEMENT_API_DATABASE_URL or DATABASE_URL"
    )

    openapi = commands.add_parser("openapi", help="write each service's OpenAPI document to docs/openapi/")
    openapi.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "docs" / "openapi",
        help="folder to write <service>.json into (default docs/openapi)",
    )

    asyncapi = commands.add_parser(
        "asyncapi", help="write the AsyncAPI document, generated from the event contracts"
    )
    asyncapi.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "docs" / "asyncapi.yaml",
        help="file to write (default docs/asyncapi.yaml)",
    )

    dead = commands.add_parser(
        "dead-letters",
        help="count and list a consumer queue's dead letters, or send them back to the queue",
    )
    dead.add_argument("queue", help="the consumer's queue, e.g. notify-worker.events")
    dead.add_argument(
        "--amqp-url", default=None, help="RabbitMQ URL (default: AMQP_URL from the environment)"
    )
    dead.add_argument(
        "--redrive", action="store_true", help="move them back to the queue with a fresh retry schedule"
    )
    dead.add_argument(
        "--limit", type=int, default=None, help="at most this many (default: all to redrive, 20 to list)"
    )

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "embedded":
        from tilbake.embedded.runner import run

        run(
            host=args.host,
            base_port=args.base_port,
            data_dir=args.data_dir,
            log_level=args.log_level,
        )
    elif args.command == "token":
        from shared.minting import mint_token

        print(
            mint_token(
                role=args.role,
                subject=args.sub,
                organization_id=args.org,
                organization_number=args.orgno,
                scopes=args.scope,
                ttl_seconds=args.ttl,
            )
        )
    elif args.command == "seed-directory":
        return _seed_directory(args.database_url)
    elif args.command == "config-table":
        print(configuration_table())
    elif args.command == "openapi":
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in openapi_documents().items():
            (args.out / f"{name}.json").write_text(text)
            print(f"wrote {args.out / (name + '.json')}")
    elif args.command == "dead-letters":
        return _dead_letters(args.queue, args.amqp_url, redrive=args.redrive, limit=args.limit)
    elif args.command == "asyncapi":
        # Imported here like the apps above: the other commands need no YAML.
        from tilbake.asyncapi import asyncapi_document

        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(asyncapi_document())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
