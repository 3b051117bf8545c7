"""Organization directory rules. Flushes, never commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from agreement_api.organizations.errors import (
    InvalidParent,
    OrganizationExists,
    OrganizationNotFound,
)
from agreement_api.organizations.models import NavServiceArea, Organization, OrganizationType
from agreement_api.organizations.schemas import OrganizationCreate, OrganizationUpdate
from shared.contracts import events as contracts
from shared.db import utcnow
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
    _emit(session, contracts.OrganizationCreated, organization)
    return organization


def _emit(
    session: AsyncSession,
    contract: type[contracts.OrganizationCreated | contracts.OrganizationChanged],
    organization: Organization,
    **extra: Any,
) -> None:
    payload = contract(
        organization_id=organization.id,
        type=organization.type,
        name=organization.name,
        kommunenummer=organization.kommunenummer,
        enhetsnummer=organization.enhetsnummer,
        parent_id=organization.parent_id,
        **extra,
    )
    add_event(session, AgreementOutbox, payload, subject=f"organization/{organization.id}")


async def update(
    session: AsyncSession, *, organization: Organization, data: OrganizationUpdate
) -> Organization:
    """Change name, organization number, security level or parent (the caller checked If-Match)."""
    changes = data.model_dump(exclude_unset=True)
    if (
        "security_level" in changes
        and changes["security_level"] is not None
        and organization.type is not OrganizationType.PRISON
    ):
        raise InvalidParent("Only a prison has a security level", field="security_level")
    if changes.get("parent_id") is not None and (
        changes["parent_id"] == organization.id
        or await session.get(Organization, changes["parent_id"]) is None
    ):
        raise InvalidParent(f"Parent organization {changes['parent_id']} does not exist", field="parent_id")
    if changes.get("organization_number"):
        clash = (
            await session.execute(
                select(col(Organization.id)).where(
                    col(Organization.organization_number) == changes["organization_number"],
                    col(Organization.id) != organization.id,
                )
            )
        ).scalar()
        if clash is not None:
            raise OrganizationExists(
                "Another organization has that organization number", existing_id=str(clash)
            )
    changed = [name for name, value in changes.items() if getattr(organization, name) != value]
    if not changed:
        return organization
    for name in changed:
        setattr(organization, name, changes[name])
    organization.updated_at = utcnow()
    await session.flush()
    _emit(session, contracts.OrganizationChanged, organization, changed=sorted(changed))
    return organization


async def service_area(session: AsyncSession, organization_id: uuid.UUID) -> list[str]:
    rows = await session.execute(
        select(col(NavServiceArea.kommunenummer))
        .where(col(NavServiceArea.nav_office_id) == organization_id)
        .order_by(col(NavServiceArea.kommunenummer))
    )
    return list(rows.scalars())


async def set_service_area(
    session: AsyncSession, *, organization: Organization, kommunenummer: list[str]
) -> list[str]:
    """Replace the municipalities a NAV office serves."""
    if organization.type is not OrganizationType.NAV_OFFICE:
        raise InvalidParent("Only a NAV office has a service area", field="kommunenummer")
    before = await service_area(session, organization.id)
    if before == kommunenummer:
        return before
    await session.execute(delete(NavServiceArea).where(col(NavServiceArea.nav_office_id) == organization.id))
    session.add_all(
        NavServiceArea(nav_office_id=organization.id, kommunenummer=number) for number in kommunenummer
    )
    organization.updated_at = utcnow()
    await session.flush()
    _emit(
        session,
        contracts.OrganizationChanged,
        organization,
        changed=["serves_kommunenummer"],
        serves_kommunenummer=kommunenummer,
    )
    return kommunenummer


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
