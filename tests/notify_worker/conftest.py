"""notify-worker fixtures: case-api and agreement-api in-process on the test transaction, a shared
organization directory, and the worker's ports speaking to both over ASGI transports."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.models import CaseOutbox
from case_api.organizations import service as case_organizations
from notify_worker.clients import AgreementClient, CaseClient, cached
from notify_worker.consumer import make_handler
from notify_worker.notices.models import NotifyNotice
from notify_worker.notices.service import Ports
from shared.auth import mint_token
from shared.db import unit_of_work
from tests.case_api.conftest import register_person
from tests.conftest import auth, running, test_settings
from tests.notify_worker.harness import Processes
from tests.notify_worker.webhook_setup import Setup, start_setup
from tests.webhook_receiver import Receiver

ADMIN = auth("admin")


def today() -> date:
    return datetime.now(UTC).date()


@dataclass
class World:
    """Both upstream services, the directory and a way to feed case events to the worker."""

    case: httpx.AsyncClient
    agreement: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    ports: Ports
    ids: dict[str, uuid.UUID]
    seen: set[uuid.UUID] = field(default_factory=set)

    async def open_case(self, *, nav: bool = True, unit: str = "prison") -> str:
        person = await register_person(self.case, ADMIN)
        body: dict[str, Any] = {
            "person_id": person["id"],
            "current_unit_id": str(self.ids[unit]),
            "planning_basis": "final_judgment",
        }
        if nav:
            body["nav_office_id"] = str(self.ids["nav"])
        response = await self.case.post("/api/v1/cases", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def etag(self, case_id: str) -> str:
        return str((await self.case.get(f"/api/v1/cases/{case_id}", headers=ADMIN)).headers["etag"])

    async def set_municipality(self, case_id: str, kommunenummer: str | None, status: str) -> None:
        body: dict[str, Any] = {"responsible_kommunenummer": kommunenummer, "status": status}
        if status == "disputed":
            body["note"] = "Two municipalities disagree"
        response = await self.case.put(
            f"/api/v1/cases/{case_id}/municipality",
            json=body,
            headers={**ADMIN, "If-Match": await self.etag(case_id)},
        )
        assert response.status_code == 200, response.text

    async def set_release(self, case_id: str, day: date) -> None:
        response = await self.case.post(
            f"/api/v1/cases/{case_id}/release-dates",
            json={"kind": "expected", "date": day.isoformat(), "certainty": "probable", "source": "judgment"},
            headers={**ADMIN, "If-Match": await self.etag(case_id)},
        )
        assert response.status_code in (200, 201), response.text

    async def give_consent(self, case_id: str, *organizations: str, domains: list[str] | None = None) -> str:
        response = await self.case.post(
            f"/api/v1/cases/{case_id}/consents",
            json={
                "basis": "consent",
                "organization_ids": [str(self.ids[name]) for name in organizations],
                "domains": domains or ["housing"],
            },
            headers=ADMIN,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def withdraw(self, case_id: str, consent_id: str) -> None:
        response = await self.case.post(
            f"/api/v1/cases/{case_id}/consents/{consent_id}/withdraw", json={}, headers=ADMIN
        )
        assert response.status_code == 200, response.text

    async def set_status(self, case_id: str, status: str) -> None:
        response = await self.case.post(
            f"/api/v1/cases/{case_id}/status",
            json={"status": status},
            headers={**ADMIN, "If-Match": await self.etag(case_id)},
        )
        assert response.status_code == 200, response.text

    async def patch(self, case_id: str, **body: Any) -> None:
        response = await self.case.patch(
            f"/api/v1/cases/{case_id}", json=body, headers={**ADMIN, "If-Match": await self.etag(case_id)}
        )
        assert response.status_code == 200, response.text

    async def feed(self) -> int:
        """Hand every case event not yet seen to the worker's consumer, oldest first."""
        async with self.sessionmaker() as session:
            rows = (
                (await session.execute(select(CaseOutbox).order_by(col(CaseOutbox.occurred_at))))
                .scalars()
                .all()
            )
        handler = make_handler(self.sessionmaker, self.ports, cached(self.ports.agreements, 0))
        fed = 0
        for row in rows:
            if row.id in self.seen:
                continue
            self.seen.add(row.id)
            await handler(row.envelope())
            fed += 1
        return fed

    async def notices(self, case_id: str) -> list[NotifyNotice]:
        async with self.sessionmaker() as session:
            result = await session.execute(
                select(NotifyNotice)
                .where(col(NotifyNotice.case_id) == uuid.UUID(case_id))
                .order_by(col(NotifyNotice.recipient_kind), col(NotifyNotice.milestone_days))
            )
            return list(result.scalars().all())


_DIRECTORY: list[tuple[str, dict[str, Any]]] = [
    ("region", {"type": "region", "name": "Region øst"}),
    ("prison", {"type": "prison", "name": "Oslo fengsel", "parent": "region"}),
    ("oslo", {"type": "municipality", "name": "Oslo kommune", "kommunenummer": "0301"}),
    ("halden", {"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"}),
    (
        "nav",
        {"type": "nav_office", "name": "NAV Grünerløkka", "kommunenummer": "0301", "enhetsnummer": "9301"},
    ),
]


async def _seed_directory(
    agreement: httpx.AsyncClient, sm: async_sessionmaker[AsyncSession]
) -> dict[str, uuid.UUID]:
    ids: dict[str, uuid.UUID] = {}
    for key, spec in _DIRECTORY:
        body = {k: v for k, v in spec.items() if k != "parent"}
        if "parent" in spec:
            body["parent_id"] = str(ids[spec["parent"]])
        response = await agreement.post("/api/v1/organizations", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        ids[key] = uuid.UUID(response.json()["id"])
    async with unit_of_work(sm) as session:  # case-api keeps its own copy of the directory
        for key, spec in _DIRECTORY:
            await case_organizations.upsert(
                session,
                organization_id=ids[key],
                type=spec["type"],
                name=spec["name"],
                parent_id=ids[spec["parent"]] if "parent" in spec else None,
                kommunenummer=spec.get("kommunenummer"),
                enhetsnummer=spec.get("enhetsnummer"),
            )
    return ids


@pytest.fixture
async def world(database_url: str, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[World]:
    from agreement_api.main import create_app as agreement_app
    from case_api.main import create_app as case_app

    token = mint_token(role="service", subject="notify-worker")
    async with (
        running(case_app(test_settings("case_api.config", database_url)), sessionmaker=sessionmaker) as case,
        running(
            agreement_app(test_settings("agreement_api.config", database_url)), sessionmaker=sessionmaker
        ) as agreement,
    ):
        ports = Ports(
            agreements=AgreementClient("http://agreement-api", token, http=agreement),
            cases=CaseClient("http://case-api", token, http=case),
        )
        ids = await _seed_directory(agreement, sessionmaker)
        yield World(case=case, agreement=agreement, sessionmaker=sessionmaker, ports=ports, ids=ids)


def days(n: int) -> timedelta:
    return timedelta(days=n)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real local webhook receiver (tests.webhook_receiver)."""
    async with Receiver().serving() as started:
        yield started


@pytest.fixture
async def setup(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], receiver: Receiver
) -> AsyncIterator[Setup]:
    """agreement-api with the receiver registered as an endpoint, and a dispatcher factory."""
    async with start_setup(database_url, sessionmaker, receiver) as ready:
        yield ready


@pytest.fixture
async def processes(tmp_path: Path) -> AsyncIterator[Processes]:
    """Service processes a test starts (tests/notify_worker/harness.py), stopped after it."""
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
