"""The three services started as deployed: ``*_ENV=production``, real processes, no development key.

A test issuer (an HTTP server in this process) serves the public half of an RSA key pair made here
as a JWKS; the services verify tokens against it, so its tokens are accepted and the development
key's are refused. It also mints the service tokens case-api and notify-worker call their peers
with, and one case travels through all three services on them. Every secret production requires
is given a non-development value; leaving out any one of them stops a start, naming the variable.
Webhook URLs must be https, and the dev flags that open plain http or private addresses are
refused at start. The three services start once for the module.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from case_api.organizations.models import OrganizationRef
from shared.auth import mint_token, public_jwk
from shared.retry import RETRY_DELAYS_SECONDS
from shared.settings import DEV_JWT_PUBLIC_KEY_FILE, REPO_ROOT
from tests.case_api.conftest import identity_number
from tests.infra import RabbitMQ, free_port, unique_name
from tests.notify_worker.harness import Processes, ServiceProcess, start_service, wait_until

AUDIENCE = "tilbake-production-test"
KID = "production-test-1"
PREFIXES = {"case-api": "CASE_API_", "agreement-api": "AGREEMENT_API_", "notify-worker": "NOTIFY_WORKER_"}
MODULES = {"case-api": "case_api", "agreement-api": "agreement_api", "notify-worker": "notify_worker"}
# What each service refuses to start without in production (the suffix after its prefix). For the
# verification key JWT_JWKS_URL stands for "JWT_JWKS_URL or JWT_PUBLIC_KEY_PEM".
REQUIRED = {
    "case-api": (
        "DATABASE_URL",
        "AMQP_URL",
        "JWT_JWKS_URL",
        "IDENTITY_HASH_KEY",
        "IDENTITY_ENCRYPTION_KEYS",
        "SERVICE_TOKEN",
    ),
    "agreement-api": ("DATABASE_URL", "AMQP_URL", "JWT_JWKS_URL", "WEBHOOK_KEY_ENCRYPTION_KEYS"),
    "notify-worker": ("DATABASE_URL", "AMQP_URL", "JWT_JWKS_URL", "SERVICE_TOKEN"),
}
# Development values given explicitly: refused at start as well, naming the variable.
REFUSED = {
    "agreement-api": {"ALLOW_HTTP_WEBHOOKS": "true", "ALLOW_PRIVATE_WEBHOOK_URLS": "true"},
    "notify-worker": {"JWT_PUBLIC_KEY_PEM": DEV_JWT_PUBLIC_KEY_FILE.read_text()},
}
SECRET_TEMPLATE = REPO_ROOT / "deploy" / "k8s" / "secret.template.yaml"
DEPLOY_README = REPO_ROOT / "deploy" / "README.md"


# --- the test issuer ----------------------------------------------------------------------------


class Issuer:
    """An identity provider as far as the services see one: a JWKS at a URL, and tokens signed with
    the matching private key (with its ``kid``)."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        body = json.dumps({"keys": [public_jwk(public_pem, kid=KID)]}).encode()
        self.jwks_requests = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                issuer.jwks_requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self.jwks_url = f"{self.url}.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def token(self, role: str, **claims: Any) -> str:
        return mint_token(
            role=role,
            issuer=self.url,
            audience=AUDIENCE,
            private_key_pem=self.private_pem,
            headers={"kid": KID},
            **claims,
        )

    def auth(self, role: str, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, **claims)}"}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- the deployment -----------------------------------------------------------------------------


@dataclass
class Deployment:
    issuer: Issuer
    settings: dict[str, dict[str, str]]  # per service, as started (without prefix)
    services: dict[str, ServiceProcess]
    logs: Path

    def leaked(self, text: str) -> list[str]:
        """The secrets given (each key of a list on its own) that ``text`` shows, whole or their last
        16 characters (where a shortened repr would cut them)."""
        names = (
            "identity_hash_key",
            "identity_encryption_keys",
            "webhook_key_encryption_keys",
            "service_token",
        )
        return [
            f"{service}.{name}"
            for service, settings in self.settings.items()
            for name in names
            for value in settings.get(name, "").split(",")
            if value and value[-16:] in text
        ]

    def url(self, service: str) -> str:
        return self.services[service].url


def _tail(process: ServiceProcess, lines: int = 15) -> str:
    """The end of a process's output, without its request log lines (the test's own polling)."""
    kept = [line for line in process.output().splitlines() if '"event": "http.request"' not in line]
    return "\n".join(kept[-lines:])


def production_settings(
    issuer: Issuer, database_url: str, amqp_url: str, exchange: str
) -> dict[str, dict[str, str]]:
    """Each service's settings as a deployment gives them, with fresh non-development secrets."""
    common = {
        "env": "production",
        "database_url": database_url,
        "amqp_url": amqp_url,
        "event_exchange": exchange,
        "jwt_jwks_url": issuer.jwks_url,
        "jwt_issuer": issuer.url,
        "jwt_audience": AUDIENCE,
        "database_pool_size": "4",
        "outbox_poll_seconds": "0.1",
    }
    ports = {service: str(free_port()) for service in PREFIXES}
    case_url = f"http://127.0.0.1:{ports['case-api']}"
    agreement_url = f"http://127.0.0.1:{ports['agreement-api']}"
    week = 7 * 24 * 3600
    # Secrets last: an error that echoed its input (a shortened repr, its end shown) would show them.
    return {
        "case-api": {
            **common,
            "port": ports["case-api"],
            "queue": unique_name("test.production.case"),
            "agreement_api_url": agreement_url,
            "public_base_url": "https://case-api.example.org",
            "identity_hash_key": secrets.token_urlsafe(32),
            "identity_encryption_keys": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
            "service_token": issuer.token("service", subject="case-api", ttl_seconds=week),
        },
        "agreement-api": {
            **common,
            "port": ports["agreement-api"],
            "queue": unique_name("test.production.agreement"),
            "webhook_key_encryption_keys": Fernet.generate_key().decode(),
        },
        "notify-worker": {
            **common,
            "port": ports["notify-worker"],
            "queue": unique_name("test.production.worker"),
            "case_api_url": case_url,
            "agreement_api_url": agreement_url,
            "case_api_public_url": "https://case-api.example.org",
            "dispatch_interval_seconds": "0.2",
            "endpoint_cache_seconds": "0",
            "service_token": issuer.token("service", subject="notify-worker", ttl_seconds=week),
        },
    }


async def _delete_queues(amqp_url: str, queues: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for name in queues:
            retries = [f"{name}.retry.{int(delay * 1000)}ms" for delay in RETRY_DELAYS_SECONDS]
            for queue in (name, f"{name}.dead", *retries):
                await channel.queue_delete(queue)
    finally:
        await connection.close()


async def _empty_tables(engine: AsyncEngine) -> None:
    """What the module's processes committed goes, as committed_sessionmaker does after a test."""
    async with engine.begin() as conn:
        tables = (
            await conn.execute(
                text(
                    "SELECT tablename FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
        ).scalars()
        names = ", ".join(f'"{name}"' for name in tables)
        if names:
            await conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(scope="module")
async def deployment(
    database_url: str,
    engine: AsyncEngine,
    rabbitmq: RabbitMQ,
    exchange_name: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Deployment]:
    issuer = Issuer()
    settings = production_settings(issuer, database_url, rabbitmq.url, exchange_name)
    logs = tmp_path_factory.mktemp("production")
    processes = Processes(logs)
    try:
        services = {
            service: processes.start(MODULES[service], PREFIXES[service], settings[service], service)
            for service in ("agreement-api", "case-api", "notify-worker")
        }
        await asyncio.gather(*(process.wait_ready() for process in services.values()))
        yield Deployment(issuer, settings, services, logs)
    finally:
        processes.stop_all()
        issuer.stop()
        await _delete_queues(rabbitmq.url, [values["queue"] for values in settings.values()])
        await _empty_tables(engine)


# --- tokens ---------------------------------------------------------------------------------------


async def test_tokens_of_the_issuer_are_accepted_and_the_development_key_is_refused(
    deployment: Deployment,
) -> None:
    issuer = deployment.issuer
    asked = {
        "the issuer's": issuer.auth("admin"),
        "the dev key's, with the issuer's claims": {
            "Authorization": f"Bearer {mint_token(role='admin', issuer=issuer.url, audience=AUDIENCE)}"
        },
        "the dev key's, as dev tooling mints it": {"Authorization": f"Bearer {mint_token(role='admin')}"},
        "the issuer's, for another audience": {
            "Authorization": "Bearer "
            + mint_token(
                role="admin", issuer=issuer.url, private_key_pem=issuer.private_pem, headers={"kid": KID}
            )
        },
    }
    answers: dict[tuple[str, str], int] = {}
    for service in PREFIXES:
        async with httpx.AsyncClient(base_url=deployment.url(service), timeout=10, trust_env=False) as client:
            for name, headers in asked.items():
                answers[service, name] = (await client.get("/api/v1/me", headers=headers)).status_code
    expected = {(service, name): 200 if name == "the issuer's" else 401 for service, name in answers}
    assert answers == expected
    assert issuer.jwks_requests >= 1, "the services never fetched the issuer's JWKS"


# --- service tokens: one case through the three services ------------------------------------------


async def _directory(client: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, str]:
    """A region, its prison and Oslo's municipality, created at agreement-api as an admin would."""
    ids: dict[str, str] = {}
    for key, body in (
        ("region", {"type": "region", "name": "Region øst"}),
        ("prison", {"type": "prison", "name": "Oslo fengsel", "parent": "region"}),
        ("oslo", {"type": "municipality", "name": "Oslo kommune", "kommunenummer": "0301"}),
    ):
        if "parent" in body:
            body = {**{k: v for k, v in body.items() if k != "parent"}, "parent_id": ids[body["parent"]]}
        response = await client.post("/api/v1/organizations", json=body, headers=admin)
        assert response.status_code == 201, response.text
        ids[key] = str(response.json()["id"])
    return ids


def _known_to_case_api(engine: AsyncEngine, ids: list[str]) -> Callable[[], Awaitable[bool]]:
    async def known() -> bool:
        async with engine.connect() as conn:
            query = select(col(OrganizationRef.id)).where(col(OrganizationRef.id).in_(map(uuid.UUID, ids)))
            return len((await conn.execute(query)).all()) == len(ids)

    return known


async def _open_case(
    client: httpx.AsyncClient, admin: dict[str, str], ids: dict[str, str], number: str
) -> str:
    """A case in the prison, consent for Oslo, Oslo confirmed, release in 40 days (so the 90-day
    notice is due at once)."""
    person = await client.post(
        "/api/v1/persons",
        json={"identity_number": number, "given_name": "Kari", "family_name": "Nordmann"},
        headers=admin,
    )
    assert person.status_code == 201, person.text
    opened = await client.post(
        "/api/v1/cases",
        json={
            "person_id": person.json()["id"],
            "current_unit_id": ids["prison"],
            "planning_basis": "final_judgment",
        },
        headers=admin,
    )
    assert opened.status_code == 201, opened.text
    case_id = str(opened.json()["id"])
    consent = await client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={"basis": "consent", "organization_ids": [ids["oslo"]], "domains": ["housing"]},
        headers=admin,
    )
    assert consent.status_code == 201, consent.text
    changed = await client.put(
        f"/api/v1/cases/{case_id}/municipality",
        json={"responsible_kommunenummer": "0301", "status": "confirmed"},
        headers={**admin, "If-Match": opened.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    release = datetime.now(UTC).date() + timedelta(days=40)
    etag = (await client.get(f"/api/v1/cases/{case_id}", headers=admin)).headers["etag"]
    dated = await client.post(
        f"/api/v1/cases/{case_id}/release-dates",
        json={"kind": "expected", "date": release.isoformat(), "certainty": "probable", "source": "judgment"},
        headers={**admin, "If-Match": etag},
    )
    assert dated.status_code in (200, 201), dated.text
    return case_id


async def test_the_service_tokens_carry_the_calls_between_the_services(
    deployment: Deployment, engine: AsyncEngine
) -> None:
    """case-api asks agreement-api for the rules of a notice detail; notify-worker asks
    agreement-api for the rules and the endpoints and case-api for the consent. Each call carries
    the service token the issuer minted; one refused would show as a 503 or a notice that never
    leaves its hold."""
    admin = deployment.issuer.auth("admin")
    number = identity_number(date(1961, 1, 1) + timedelta(days=random.randrange(10000)))
    async with (
        httpx.AsyncClient(base_url=deployment.url("agreement-api"), timeout=10, trust_env=False) as agreement,
        httpx.AsyncClient(base_url=deployment.url("case-api"), timeout=10, trust_env=False) as case,
        httpx.AsyncClient(base_url=deployment.url("notify-worker"), timeout=10, trust_env=False) as worker,
    ):
        ids = await _directory(agreement, admin)
        await wait_until(
            _known_to_case_api(engine, list(ids.values())),
            30,
            lambda: f"case-api never consumed the directory:\n{_tail(deployment.services['case-api'])}",
        )
        case_id = await _open_case(case, admin, ids, number)

        # case-api -> agreement-api (CASE_API_SERVICE_TOKEN): the rules behind a recipient's view.
        detail = await case.get(
            f"/api/v1/cases/{case_id}/notice-detail",
            headers=deployment.issuer.auth("municipality", organization_id=ids["oslo"]),
        )
        assert detail.status_code == 200, detail.text
        assert detail.json()["release_date"] == (datetime.now(UTC).date() + timedelta(days=40)).isoformat()

        # notify-worker -> agreement-api (rules, endpoints) and -> case-api (consent), with
        # NOTIFY_WORKER_SERVICE_TOKEN: the 90-day notice to Oslo is planned unheld, claimed, and,
        # as Oslo has no endpoint, ends dead.
        notices: list[dict[str, Any]] = []

        async def ninety_day_notice_ended() -> bool:
            answer = await worker.get(f"/api/v1/cases/{case_id}/notices", headers=admin)
            assert answer.status_code == 200, answer.text
            notices[:] = [
                item
                for item in answer.json()["items"]
                if item["recipient_organization_id"] == ids["oslo"] and item["milestone_days"] == 90
            ]
            return bool(notices) and notices[0]["state"] == "dead"

        await wait_until(
            ninety_day_notice_ended,
            30,
            lambda: f"the 90-day notice {notices}:\n{_tail(deployment.services['notify-worker'])}",
        )
    for service, process in deployment.services.items():
        output = process.output()
        assert number not in output, f"{service} logged the identity number"
        assert not deployment.leaked(output), f"{service} logged a secret"


# --- webhooks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.org/tilbake", "must use https"),
        ("http://127.0.0.1:9/tilbake", "must use https"),
        ("https://127.0.0.1:9/tilbake", "loopback"),
        ("https://10.1.2.3/tilbake", "private"),
    ],
)
async def test_webhooks_are_https_to_public_addresses_only(
    deployment: Deployment, url: str, reason: str
) -> None:
    admin = deployment.issuer.auth("admin")
    async with httpx.AsyncClient(
        base_url=deployment.url("agreement-api"), timeout=10, trust_env=False
    ) as client:
        organization = await client.post(
            "/api/v1/organizations", json={"type": "ngo", "name": "Mottaker"}, headers=admin
        )
        assert organization.status_code == 201, organization.text
        response = await client.post(
            f"/api/v1/organizations/{organization.json()['id']}/webhooks",
            json={"url": url, "key_kind": "hmac"},
            headers=admin,
        )
    assert response.status_code == 422, response.text
    assert reason in response.text


# --- refused starts -------------------------------------------------------------------------------


def _without(deployment: Deployment, service: str, name: str) -> dict[str, str]:
    """The service's full production settings, ``name`` left out or, when REFUSED names it, given
    its development value."""
    given = {key: value for key, value in deployment.settings[service].items() if key != name.lower()}
    if name in REFUSED.get(service, {}):
        given[name.lower()] = REFUSED[service][name]
        if name == "JWT_PUBLIC_KEY_PEM":
            del given["jwt_jwks_url"]  # the JWKS would take precedence over the PEM
    return given


async def _exit_code(process: ServiceProcess, timeout: float = 60.0) -> int | None:
    """The process's exit code; None once it serves, or when it neither serves nor exits in time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (code := process.process.poll()) is None:
        if "Application startup complete" in process.output() or asyncio.get_running_loop().time() > deadline:
            return None
        await asyncio.sleep(0.1)
    return code


# Started as processes: a refusal by the settings, one by a startup hook in each service that has
# one, and a development flag. Every other case goes through the same settings check in-process.
REFUSED_STARTS = [
    ("case-api", "IDENTITY_ENCRYPTION_KEYS"),
    ("case-api", "SERVICE_TOKEN"),
    ("notify-worker", "SERVICE_TOKEN"),
    ("agreement-api", "ALLOW_HTTP_WEBHOOKS"),
]


async def test_a_missing_secret_or_a_development_flag_stops_the_process(deployment: Deployment) -> None:
    """The process exits non-zero, its output names the variable and none of the secrets given."""
    starts = [
        (
            f"{PREFIXES[service]}{name}",
            start_service(
                MODULES[service],
                PREFIXES[service],
                {**_without(deployment, service, name), "port": "0"},
                log_dir=deployment.logs,
                name=f"refused-{service}-{name}",
            ),
        )
        for service, name in REFUSED_STARTS
    ]
    wrong: list[str] = []
    try:
        for variable, process in starts:
            code = await _exit_code(process)
            output = process.output()
            if code is None:
                wrong.append(
                    f"{process.module} with {variable} wrong is serving (or hangs):\n{_tail(process)}"
                )
            elif code == 0:
                wrong.append(f"{process.module} exited 0 with {variable} wrong")
            elif variable not in output:
                wrong.append(
                    f"{process.module} refused to start without naming {variable}:\n{_tail(process)}"
                )
            if leaked := deployment.leaked(output):
                wrong.append(f"{process.module}, refused for {variable}, printed {leaked}")
    finally:
        for _variable, process in starts:
            process.stop(timeout=5)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("service", "name"),
    [
        *(
            (service, name)
            for service, names in REQUIRED.items()
            for name in names
            if name != "SERVICE_TOKEN"
        ),
        *((service, name) for service, flags in REFUSED.items() for name in flags),
    ],
)
def test_each_required_secret_is_required_on_its_own(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, service: str, name: str
) -> None:
    """All but one of a working production environment: the settings, read from it as a start reads
    them, refuse it by its variable. (A missing SERVICE_TOKEN is refused by a startup hook, above.)"""
    import importlib

    prefix = PREFIXES[service]
    for variable in [variable for variable in os.environ if variable.startswith(prefix)]:
        monkeypatch.delenv(variable)
    for key, value in _without(deployment, service, name).items():
        monkeypatch.setenv(f"{prefix}{key.upper()}", value)
    settings = importlib.import_module(f"{MODULES[service]}.config").Settings
    with pytest.raises(ValidationError, match=f"{prefix}{name}") as refused:
        settings()
    assert not deployment.leaked(str(refused.value))


# --- the deployment documents say the same --------------------------------------------------------


def test_the_secret_template_and_the_deploy_readme_list_every_required_secret() -> None:
    documents = list(yaml.safe_load_all(SECRET_TEMPLATE.read_text()))
    text = DEPLOY_README.read_text()
    start = text.index("### Production secrets\n")
    readme = text[start : text.find("\n#", start + 1)]  # up to the next heading
    missing: list[str] = []
    for service, prefix in PREFIXES.items():
        (secret,) = [d for d in documents if d and d["metadata"]["name"] == f"{service}-secrets"]
        data = secret.get("stringData", {})
        for name in REQUIRED[service]:
            variable = f"{prefix}{name}"
            either = {variable, f"{prefix}JWT_PUBLIC_KEY_PEM"} if name == "JWT_JWKS_URL" else {variable}
            if not either & set(data):
                missing.append(f"{variable} is not in {SECRET_TEMPLATE.name}")
            if variable not in readme:
                missing.append(f"{variable} is not in deploy/README.md, Production secrets")
    assert not missing, "\n".join(missing)
