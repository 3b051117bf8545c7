"""case-api fixtures: a small organization directory, helpers to register people and open cases, and
agreement-api in-process for the notice detail view."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.notices.agreements import AgreementApi
from case_api.organizations import service as organizations
from case_api.organizations.models import OrganizationRef
from shared.auth import mint_token
from shared.db import unit_of_work
from shared.identifiers import make_identity_number
from tests.conftest import auth, running, test_settings


@dataclass(frozen=True)
class Directory:
    region_east: uuid.UUID
    region_south: uuid.UUID
    unit_oslo: uuid.UUID  # prison in region east
    unit_halden: uuid.UUID  # prison in region east
    unit_sem: uuid.UUID  # prison in region south
    oslo: uuid.UUID  # municipality 0301
    halden: uuid.UUID  # municipality 3101
    nav_grunerlokka: uuid.UUID  # NAV office in Oslo
    nav_halden: uuid.UUID
    health_trust: uuid.UUID
    ngo: uuid.UUID

    def headers(self, role: str, org: uuid.UUID | None = None, **kwargs: Any) -> dict[str, str]:
        return auth(role, org=str(org) if org else None, **kwargs)

    @property
    def coordinator_east(self) -> dict[str, str]:
        return self.headers("coordinator", self.region_east)

    @property
    def admin(self) -> dict[str, str]:
        return self.headers("admin")


@pytest.fixture
async def directory(sessionmaker: async_sessionmaker[AsyncSession]) -> Directory:
    ids = {name: uuid.uuid4() for name in Directory.__dataclass_fields__}
    rows = [
        ("region_east", "region", "Region øst", None, None, None),
        ("region_south", "region", "Region sør", None, None, None),
        ("unit_oslo", "prison", "Oslo fengsel", "region_east", None, None),
        ("unit_halden", "prison", "Halden fengsel", "region_east", None, None),
        ("unit_sem", "prison", "Sem fengsel", "region_south", None, None),
        ("oslo", "municipality", "Oslo kommune", None, "0301", None),
        ("halden", "municipality", "Halden kommune", None, "3101", None),
        ("nav_grunerlokka", "nav_office", "NAV Grünerløkka", "oslo", "0301", "9301"),
        ("nav_halden", "nav_office", "NAV Halden", "halden", "3101", "9310"),
        ("health_trust", "health_trust", "Sykehuset Østfold", None, None, None),
        ("ngo", "ngo", "Røde Kors", None, None, None),
    ]
    async with unit_of_work(sessionmaker) as session:
        for key, kind, name, parent, kommunenummer, enhetsnummer in rows:
            await organizations.upsert(
                session,
                organization_id=ids[key],
                type=kind,
                name=name,
                parent_id=ids[parent] if parent else None,
                kommunenummer=kommunenummer,
                enhetsnummer=enhetsnummer,
            )
    return Directory(**ids)


_numbers = itertools.count(1)


def identity_number(birth: date = date(1988, 5, 17)) -> str:
    """A fresh valid synthetic identity number."""
    while True:
        number = make_identity_number(birth, next(_numbers) % 500)
        if number:
            return number


async def register_person(
    client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    body = {
        "identity_number": identity_number(),
        "given_name": "Kari",
        "family_name": "Nordmann",
        **overrides,
    }
    response = await client.post("/api/v1/persons", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def open_case(
    client: httpx.AsyncClient, headers: dict[str, str], *, unit: uuid.UUID, **overrides: Any
) -> dict[str, Any]:
    person = await register_person(client, headers)
    body = {
        "person_id": person["id"],
        "current_unit_id": str(unit),
        "planning_basis": "final_judgment",
        **overrides,
    }
    response = await client.post("/api/v1/cases", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def case_app(database_url: str) -> FastAPI:
    from case_api.main import create_app

    return create_app(test_settings("case_api.config", database_url))


@pytest.fixture
async def case_client(
    case_app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The same client as tests/conftest.py's, with the app at hand (``case_app``) so a test can
    replace what it calls out to."""
    async with running(case_app, sessionmaker=sessionmaker) as client:
        yield client


async def use_agreement_api(app: FastAPI, agreement_api: AgreementApi) -> None:
    """Point case-api's agreement-api port somewhere else (the one replaced is closed)."""
    await app.state.agreement_api.aclose()
    app.state.agreement_api = agreement_api


async def _mirror_directory(sessionmaker: async_sessionmaker[AsyncSession], ids: list[uuid.UUID]) -> None:
    """agreement-api's directory gets the organizations case-api's copy holds, with the same ids."""
    from agreement_api.organizations.models import Organization, OrganizationType

    async with unit_of_work(sessionmaker) as session:
        refs = (
            (await session.execute(select(OrganizationRef).where(col(OrganizationRef.id).in_(ids))))
            .scalars()
            .all()
        )
        for ref in sorted(refs, key=lambda ref: ref.parent_id is not None):  # parents first
            session.add(
                Organization(
                    id=ref.id,
                    type=OrganizationType(ref.type),
                    name=ref.name,
                    parent_id=ref.parent_id,
                    kommunenummer=ref.kommunenummer,
                    enhetsnummer=ref.enhetsnummer,
                )
            )
            await session.flush()


@pytest.fixture
async def agreements(
    case_app: FastAPI,
    case_client: httpx.AsyncClient,
    agreement_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> httpx.AsyncClient:
    """agreement-api in-process on the test transaction, holding the same directory as case-api's
    copy; case-api asks it which notice rules apply. Returns a client for agreement-api."""
    await _mirror_directory(
        sessionmaker, [getattr(directory, name) for name in Directory.__dataclass_fields__]
    )
    token = mint_token(role="service", subject="case-api")
    await use_agreement_api(case_app, AgreementApi("http://agreement-api", token, http=agreement_client))
    return agreement_client
