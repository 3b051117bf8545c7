"""Helpers for tests that need consents on a case."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.cases.models import Case
from shared.db import unit_of_work


async def give_consent(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, **body: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {"basis": "consent", "domains": ["housing"], **body}
    response = await client.post(f"/api/v1/cases/{case_id}/consents", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def withdraw_consent(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, consent_id: str, **body: Any
) -> httpx.Response:
    return await client.post(
        f"/api/v1/cases/{case_id}/consents/{consent_id}/withdraw", json=body or None, headers=headers
    )


async def make_municipality_responsible(
    sessionmaker: async_sessionmaker[AsyncSession], case_id: str, kommunenummer: str
) -> None:
    async with unit_of_work(sessionmaker) as session:
        case = await session.get(Case, uuid.UUID(case_id))
        assert case is not None
        case.responsible_kommunenummer = kommunenummer
