"""Organization directory rules. Flushes, never commits."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from agreement_api.organizations.errors import (
    InvalidParent,
    OrganizationExists,
    OrganizationNotFound,
)
from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.organizations.schemas import OrganizationCreate
from shared.outbox import add_event
from shared.pagination import as_uuid, decode_cursor, encode_cursor


async def get(session: AsyncSession, *, organization_id: uuid.UUID) -> Organization:
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise OrganizationNotFound(f"No organization with id {organization_id}")
    return organization


async def create(session: AsyncSession, *, data: OrganizationCreate) -> Organization:
    """Register an organization and stage an ``organization.created.v1`` event."""
    clauses: list[ColumnElement[bool]] = []
    if data.organization_number:
        clauses.append(col(Organization.organization_number) == data.organization_number)
    if data.enhetsnummer:
        clauses.append(col(Organization.enhetsnummer) == data.enhetsnummer)
    if data.kommunenummer and data.type in (OrganizationType.MUNICIPALITY, OrganizationType.DISTRICT):
        clauses.append(
            and_(col(Organization.kommunenummer) == data.kommunenummer, col(Organization.type) == data.type)
        )
    if clauses:
        existing = (await session.execute(select(Organization).where(or_(*clauses)))).scalars().first()
        if existing is not None:
            raise OrganizationExists(
                "An organization with these identifiers exists", existing_id=str(existing.id)
            )
    if data.parent_id is not None and await session.get(Organization, data.parent_id) is None:
        raise InvalidParent(f"Parent organization {data.parent_id} does not exist")
    organization = Organization(**data.model_dump())
    session.add(organization)
    await session.flush()
    add_event(
        session,
        AgreementOutbox,
        type="organization.created.v1",
        source="agreement-api",
        subject=f"organization/{organization.id}",
        data={
            "organization_id": str(organization.id),
            "type": organization.type.value,
            "name": organization.name,
            "kommunenummer": organization.kommunenummer,
            "enhetsnummer": organization.enhetsnummer,
            "parent_id": str(organization.parent_id) if organization.parent_id else None,
        },
    )
    return organization


async def list_page(
    session: AsyncSession,
    *,
    type: OrganizationType | None,
    kommunenummer: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[Organization], str | None]:
    """One page ordered by (name, id)."""
    query = select(Organization).order_by(col(Organization.name), col(Organization.id))
    if type is not None:
        query = query.where(col(Organization.type) == type)
    if kommunenummer is not None:
        query = query.where(col(Organization.kommunenummer) == kommunenummer)
    if cursor is not None:
        name, last_id = decode_cursor(cursor, str, as_uuid)
        query = query.where(tuple_(Organization.name, Organization.id) > (name, last_id))
    rows = list((await session.execute(query.limit(limit + 1))).scalars().all())
    next_cursor = (
        encode_cursor([rows[limit - 1].name, str(rows[limit - 1].id)]) if len(rows) > limit else None
    )
    return rows[:limit], next_cursor
