"""Start case-api, agreement-api, notify-worker and the demo receiver in one process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import select
from sqlmodel import col

import agreement_api.config
import agreement_api.main
import case_api.config
import case_api.main
import notify_worker.config
import notify_worker.main
from agreement_api import seed
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.webhooks import service as webhook_service
from agreement_api.webhooks.models import WebhookEndpoint
from agreement_api.webhooks.schemas import WebhookEndpointCreate, WebhookEndpointUpdate
from agreement_api.webhooks.signing import vault_for
from case_api.organizations.models import OrganizationRef
from shared.auth import Role, mint_token
from shared.bus import InProcessBus
from shared.db import create_engine, create_sessionmaker, unit_of_work
from shared.logging import configure_logging
from shared.settings import REPO_ROOT
from shared.ssrf import UrlPolicy
from tilbake.embedded import market_demo
from tilbake.embedded.receiver import create_receiver

SERVICES = ("case-api", "agreement-api", "notify-worker")
# The demo municipality whose webhook endpoint points at the demo receiver.
DEMO_KOMMUNENUMMER = "3101"
# The NAV office of the demo service market's NAV provider.
DEMO_NAV_OFFICE = "NAV Halden (demo)"
# How long the demo service market waits for case-api's copy of the directory at the first start.
DIRECTORY_WAIT_SECONDS = 30.0


class _Server(uvicorn.Server):
    """uvicorn server that leaves signal handling to the runner (several share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def migrate(database_url: str) -> None:
    config = Config(toml_file=str(REPO_ROOT / "pyproject.toml"))
    config.attributes["sqlalchemy.url"] = database_url
    command.upgrade(config, "head")


def _apps(
    *, host: str, base_port: int, database_url: str, log_level: str, bus: InProcessBus
) -> list[tuple[str, int, FastAPI]]:
    """Each service's app on the one database and bus, from ``base_port`` up in SERVICES order."""
    port = {name: base_port + offset for offset, name in enumerate(SERVICES)}
    url = {name: f"http://{host}:{number}" for name, number in port.items()}
    # Where each service finds the others: notify-worker calls both; case-api asks agreement-api
    # which notice rules apply when a recipient fetches a notice's detail.
    case = case_api.config.Settings(
        env="dev",
        database_url=database_url,
        amqp_url=None,
        host=host,
        port=port["case-api"],
        log_level=log_level,
        agreement_api_url=url["agreement-api"],
    )
    agreement = agreement_api.config.Settings(
        env="dev",
        database_url=database_url,
        amqp_url=None,
        host=host,
        port=port["agreement-api"],
        log_level=log_level,
        # Embedded mode only: the demo receiver listens on plain http on loopback.
        allow_private_webhook_urls=True,
        allow_http_webhooks=True,
    )
    notify = notify_worker.config.Settings(
        env="dev",
        database_url=database_url,
        amqp_url=None,
        host=host,
        port=port["notify-worker"],
        log_level=log_level,
        case_api_url=url["case-api"],
        agreement_api_url=url["agreement-api"],
        case_api_public_url=url["case-api"],
        allow_private_webhook_urls=True,
        allow_http_webhooks=True,
    )
    return [
        ("case-api", case.port, case_api.main.create_app(case, bus=bus)),
        ("agreement-api", agreement.port, agreement_api.main.create_app(agreement, bus=bus)),
        ("notify-worker", notify.port, notify_worker.main.create_app(notify, bus=bus)),
    ]


async def _demo_endpoint(database_url: str, data_dir: Path, receiver_url: str, agreement: Any) -> str:
    """The demo municipality's endpoint at the demo receiver, registered once through agreement-api's
    service layer; returns the secret agreement-api issued (kept in the data dir for restarts)."""
    path = data_dir / "demo-endpoint.json"
    stored = json.loads(path.read_text()) if path.exists() else None
    policy = UrlPolicy.from_settings(agreement)
    engine = create_engine(database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            endpoint = None
            if stored is not None:
                endpoint = await session.get(WebhookEndpoint, uuid.UUID(stored["endpoint_id"]))
            if endpoint is not None and stored is not None:
                if endpoint.url != receiver_url:  # started on another base port
                    await webhook_service.update(
                        session,
                        endpoint=endpoint,
                        data=WebhookEndpointUpdate(url=receiver_url),
                        policy=policy,
                    )
                secret: str = stored["secret"]
                return secret
            municipality = (
                await session.execute(
                    select(Organization).where(
                        Organization.type == OrganizationType.MUNICIPALITY,  # type: ignore[arg-type]
                        Organization.kommunenummer == DEMO_KOMMUNENUMMER,  # type: ignore[arg-type]
                    )
                )
            ).scalar_one()
            endpoint, issued = await webhook_service.create(
                session,
                organization_id=municipality.id,
                data=WebhookEndpointCreate(url=receiver_url, description="demo receiver (embedded mode)"),
                policy=policy,
                vault=vault_for(tuple(agreement.webhook_key_encryption_keys)),
            )
            path.write_text(json.dumps({"endpoint_id": str(endpoint.id), "secret": issued.secret}))
            path.chmod(0o600)
            return issued.secret
    finally:
        await engine.dispose()


async def _load_demo_data(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            created: int = await seed.load_demo(session)
    finally:
        await engine.dispose()
    return created


async def _market_directory(database_url: str) -> market_demo.Directory:
    """The demo service market's unit, region, municipality and NAV office, from agreement-api's
    directory."""
    engine = create_engine(database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:

            async def one(*conditions: Any) -> Organization:
                found = (await session.execute(select(Organization).where(*conditions))).scalars().first()
                if found is None:
                    raise RuntimeError("the demo directory lacks what the demo service market needs")
                return found

            unit = await one(
                col(Organization.type) == OrganizationType.PRISON,
                col(Organization.name) == market_demo.UNIT_NAME,
            )
            municipality = await one(
                col(Organization.type) == OrganizationType.MUNICIPALITY,
                col(Organization.kommunenummer) == DEMO_KOMMUNENUMMER,
            )
            nav = await one(
                col(Organization.type) == OrganizationType.NAV_OFFICE,
                col(Organization.name) == DEMO_NAV_OFFICE,
            )
    finally:
        await engine.dispose()
    if unit.parent_id is None:
        raise RuntimeError(f"{market_demo.UNIT_NAME} has no region in the directory")
    return market_demo.Directory(
        unit_id=unit.id, region_id=unit.parent_id, municipality_id=municipality.id, nav_office_id=nav.id
    )


async def _until_case_api_knows(database_url: str, directory: market_demo.Directory) -> None:
    """Wait until case-api's copy of the directory, fed by agreement-api's events (at the first
    start they are still on their way), has the demo market's organizations."""
    wanted = {directory.unit_id, directory.region_id, directory.municipality_id, directory.nav_office_id}
    engine = create_engine(database_url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DIRECTORY_WAIT_SECONDS
    try:
        sessionmaker = create_sessionmaker(engine)
        while True:
            async with unit_of_work(sessionmaker) as session:
                query = select(col(OrganizationRef.id)).where(col(OrganizationRef.id).in_(wanted))
                if set((await session.execute(query)).scalars()) == wanted:
                    return
            if loop.time() > deadline:
                raise RuntimeError("case-api did not learn the demo directory in time")
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()


async def _load_demo_market(
    database_url: str, directory: market_demo.Directory, case_app: FastAPI, case_url: str
) -> None:
    """Add the demo week at the service market through case-api's API in-process, beside the
    running services, and say in one line what was added. A failure stops nothing else."""
    name = market_demo.UNIT_NAME
    try:
        await _until_case_api_knows(database_url, directory)
        transport = httpx.ASGITransport(app=case_app)
        async with httpx.AsyncClient(transport=transport, base_url=case_url, timeout=30) as client:
            loaded = await market_demo.load(client, directory)
    except Exception as exc:  # the demo is a convenience: the services run on without it
        logging.getLogger(__name__).exception("demo service market not loaded")
        print(f"[demo market] {name}: not loaded ({type(exc).__name__}: {exc})", flush=True)
        return
    if loaded.days:
        print(
            f"[demo market] {name}: {loaded.sessions} sessions and {loaded.appointments} bookings added"
            f" for {loaded.days[0]} to {loaded.days[-1]}",
            flush=True,
        )
    else:
        print(f"[demo market] {name}: this week's sessions were there already", flush=True)


async def serve(*, host: str, base_port: int, data_dir: Path, log_level: str) -> None:
    configure_logging(level=log_level)
    database_url = f"sqlite+aiosqlite:///{data_dir / 'embedded.sqlite3'}"
    await asyncio.to_thread(migrate, database_url)
    created = await _load_demo_data(database_url)

    bus = InProcessBus()
    servers: list[tuple[str, str, uvicorn.Server]] = []
    apps = _apps(host=host, base_port=base_port, database_url=database_url, log_level=log_level, bus=bus)
    for name, port, app in apps:
        config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
        servers.append((name, f"http://{host}:{port}", _Server(config)))

    receiver_port = base_port + len(SERVICES)
    receiver_url = f"http://{host}:{receiver_port}/webhooks"
    agreement_settings = apps[SERVICES.index("agreement-api")][2].state.settings
    secret = await _demo_endpoint(database_url, data_dir, receiver_url, agreement_settings)
    receiver = create_receiver(secret=secret)
    receiver_server = _Server(
        uvicorn.Config(receiver, host=host, port=receiver_port, log_config=None, access_log=False)
    )
    servers.append(("demo receiver", receiver_url, receiver_server))

    tasks = [asyncio.create_task(server.serve(), name=name) for name, _url, server in servers]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)

    while not all(server.started for _n, _u, server in servers):
        if any(task.done() for task in tasks):
            for task in tasks:
                if task.done() and task.exception():
                    raise RuntimeError(f"{task.get_name()} failed to start") from task.exception()
            raise SystemExit("a service failed to start (is the port taken? try --base-port)")
        await asyncio.sleep(0.05)

    # The demo week at the service market is added beside the running services: the banner need
    # not wait for it, and a line follows when it is in.
    market: market_demo.Directory | str
    loading: asyncio.Task[None] | None = None
    try:
        market = await _market_directory(database_url)
    except RuntimeError as exc:
        market = f"not loaded ({exc})"
    else:
        case_app = apps[SERVICES.index("case-api")][2]
        loading = asyncio.create_task(_load_demo_market(database_url, market, case_app, servers[0][1]))

    token = mint_token(role=Role.ADMIN, subject="embedded-admin", ttl_seconds=12 * 3600)
    _print_banner(
        servers, token=token, secret=secret, database_url=database_url, created=created, market=market
    )

    await stop.wait()
    if loading is not None:
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
    for _n, _u, server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def _print_banner(
    servers: list[tuple[str, str, Any]],
    *,
    token: str,
    secret: str,
    database_url: str,
    created: int,
    market: market_demo.Directory | str,
) -> None:
    print("\ntilbake is running (embedded mode: SQLite, in-process bus)\n", flush=True)
    for name, url, _server in servers:
        docs = "" if name == "demo receiver" else f"   docs {url}/docs"
        print(f"  {name:<15} {url}{docs}")
    print(f"\n  database        {database_url}")
    print(
        f"  demo data       {'loaded ' + str(created) + ' organizations' if created else 'already present'}"
    )
    print(f"  receiver secret {secret}  (Halden kommune's endpoint; issued by agreement-api)")
    if isinstance(market, str):
        print(f"  demo market     {market}")
    else:
        print(f"  demo market     {market_demo.UNIT_NAME}'s week: being added, a [demo market] line follows")
        print(f"  staff page      {servers[0][1]}/market/ui/login  with a token from")
        print(f"                  .venv/bin/tilbake token --role service_market --org {market.unit_id}")
    print("\n  dev token (admin, 12 h; mint others with `tilbake token --role ROLE --org ID`):")
    print(f"  export TOKEN={token}\n")
    print(
        '  try:  curl -H "Authorization: Bearer $TOKEN" ' + servers[1][1] + "/api/v1/organizations\n",
        flush=True,
    )


def run(
    *,
    host: str = "127.0.0.1",
    base_port: int = 8001,
    data_dir: Path | None = None,
    log_level: str = "WARNING",
) -> None:
    data_dir = data_dir or Path(os.environ.get("TILBAKE_DATA_DIR", REPO_ROOT / "var"))
    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(host=host, base_port=base_port, data_dir=data_dir, log_level=log_level))
