"""Helpers for domain and readiness tests: facts written straight to the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.cases.models import Case
from case_api.consents.models import Consent, ConsentBasis, ConsentDomain, ConsentRecipient
from shared.db import unit_of_work, utcnow


async def give_consent(
    sessionmaker: async_sessionmaker[AsyncSession],
    case_id: str | uuid.UUID,
    *,
    organization_id: uuid.UUID,
    domains: Iterable[str],
) -> uuid.UUID:
    """An active consent naming one organization for the given domains."""
    async with unit_of_work(sessionmaker) as session:
        consent = Consent(
            case_id=uuid.UUID(str(case_id)),
            basis=ConsentBasis.CONSENT,
            given_at=utcnow() - timedelta(minutes=5),
            recorded_by="test",
        )
        session.add(consent)
        await session.flush()
        session.add(ConsentRecipient(consent_id=consent.id, organization_id=organization_id))
        session.add_all(ConsentDomain(consent_id=consent.id, domain=domain) for domain in domains)
    return consent.id


async def set_case(
    sessionmaker: async_sessionmaker[AsyncSession], case_id: str | uuid.UUID, **values: Any
) -> None:
    """Set case fields directly, as the parts that own them (municipality, release dates) would."""
    async with unit_of_work(sessionmaker) as session:
        await session.execute(update(Case).where(col(Case.id) == uuid.UUID(str(case_id))).values(**values))


async def domain_etag(client: httpx.AsyncClient, headers: dict[str, str], case_id: str, domain: str) -> str:
    response = await client.get(f"/api/v1/cases/{case_id}/domains/{domain}", headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["etag"]


async def patch_domain(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, domain: str, **body: Any
) -> httpx.Response:
    etag = await domain_etag(client, headers, case_id, domain)
    return await client.patch(
        f"/api/v1/cases/{case_id}/domains/{domain}", json=body, headers={**headers, "If-Match": etag}
    )
