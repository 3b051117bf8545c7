"""The local organization read model: upserted from agreement-api's events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.organizations.models import OrganizationRef
from shared.db import utcnow
from shared.errors import UnprocessableEntity


class UnknownOrganization(UnprocessableEntity):
    title = "Unknown organization"


async def upsert(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    type: str,
    name: str,
    parent_id: uuid.UUID | None = None,
    kommunenummer: str | None = None,
    enhetsnummer: str | None = None,
) -> OrganizationRef:
    ref = await session.get(OrganizationRef, organization_id)
    if ref is None:
        ref = OrganizationRef(id=organization_id, type=type, name=name)
        session.add(ref)
    ref.type, ref.name, ref.parent_id = type, name, parent_id
    ref.kommunenummer, ref.enhetsnummer = kommunenummer, enhetsnummer
    ref.updated_at = utcnow()
    await session.flush()
    return ref


async def upsert_from_event(session: AsyncSession, data: dict[str, Any]) -> OrganizationRef:
    parent = data.get("parent_id")
    return await upsert(
        session,
        organization_id=uuid.UUID(data["organization_id"]),
        type=data["type"],
        name=data["name"],
        parent_id=uuid.UUID(parent) if parent else None,
        kommunenummer=data.get("kommunenummer"),
        enhetsnummer=data.get("enhetsnummer"),
    )


async def get(session: AsyncSession, organization_id: uuid.UUID | None) -> OrganizationRef | None:
    if organization_id is None:
        return None
    return await session.get(OrganizationRef, organization_id)


async def require(
    session: AsyncSession, organization_id: uuid.UUID, *, field: str, types: set[str]
) -> OrganizationRef:
    """The organization, which must be known and of one of ``types`` (422 naming ``field`` otherwise)."""
    ref = await session.get(OrganizationRef, organization_id)
    if ref is None:
        raise UnknownOrganization(f"No organization {organization_id} in the directory", field=field)
    if ref.type not in types:
        raise UnknownOrganization(
            f"Organization {organization_id} is a {ref.type}, expected {' or '.join(sorted(types))}",
            field=field,
        )
    return ref


async def region_of(session: AsyncSession, unit: OrganizationRef) -> uuid.UUID | None:
    """The region a unit belongs to (a region is its own region)."""
    if unit.type == "region":
        return unit.id
    seen: set[uuid.UUID] = set()
    current: OrganizationRef | None = unit
    while current is not None and current.parent_id is not None and current.id not in seen:
        seen.add(current.id)
        current = await session.get(OrganizationRef, current.parent_id)
        if current is not None and current.type == "region":
            return current.id
    return None
