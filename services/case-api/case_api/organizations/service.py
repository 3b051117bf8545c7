"""The local organization read model: upserted from agreement-api's events.

Every request needs its caller's organization and region, and opening a case needs its unit's.
They change only with directory events, so :class:`FactsCache` (one per app, on ``app.state``)
keeps them per organization for :data:`FACTS_SECONDS`. A region is found through the parents, so
a change to one organization can move others: the consumer drops every entry before it upserts
and again after its transaction commits (so a request between the two cannot keep the old row).
Another replica, whose consumer did not get the event, sees the change at most that many seconds
later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession

from case_api.organizations.models import OrganizationRef
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.errors import UnprocessableEntity

FACTS_SECONDS = 5.0
FACTS_SIZE = 4096


class UnknownOrganization(UnprocessableEntity):
    title = "Unknown organization"


@dataclass(frozen=True)
class OrganizationFacts:
    """An organization's row and its region, detached from any session (safe to share)."""

    id: uuid.UUID
    type: str
    name: str
    parent_id: uuid.UUID | None
    kommunenummer: str | None
    enhetsnummer: str | None
    updated_at: datetime
    region_id: uuid.UUID | None

    def ref(self) -> OrganizationRef:
        """A fresh, transient :class:`OrganizationRef` (one per request: never shared)."""
        return OrganizationRef(
            id=self.id,
            type=self.type,
            name=self.name,
            parent_id=self.parent_id,
            kommunenummer=self.kommunenummer,
            enhetsnummer=self.enhetsnummer,
            updated_at=self.updated_at,
        )


class FactsCache:
    """Organization facts by id for ``ttl`` seconds (a cachetools TTLCache). ``generation`` counts
    the drops, so a read that began before a drop does not store what it read."""

    def __init__(
        self,
        *,
        ttl: float = FACTS_SECONDS,
        size: int = FACTS_SIZE,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TTLCache[uuid.UUID, OrganizationFacts] = TTLCache(maxsize=size, ttl=ttl, timer=timer)
        self.generation = 0

    def clear(self) -> None:
        """Drop every organization's facts (the directory changed)."""
        self._entries.clear()
        self.generation += 1

    async def facts(self, session: AsyncSession, organization_id: uuid.UUID) -> OrganizationFacts | None:
        """The organization and its region, from the cache when read in the last few seconds."""
        found = self._entries.get(organization_id)
        if found is not None:
            return found
        generation = self.generation
        ref = await session.get(OrganizationRef, organization_id)
        if ref is None:
            return None
        found = OrganizationFacts(
            id=ref.id,
            type=ref.type,
            name=ref.name,
            parent_id=ref.parent_id,
            kommunenummer=ref.kommunenummer,
            enhetsnummer=ref.enhetsnummer,
            updated_at=ref.updated_at,
            region_id=await region_of(session, ref),
        )
        if generation == self.generation:
            self._entries[organization_id] = found
        return found

    async def require_facts(
        self, session: AsyncSession, organization_id: uuid.UUID, *, field: str, types: set[str]
    ) -> OrganizationFacts:
        """As :func:`require`, from the cached facts (with the region) when only they are needed."""
        found = await self.facts(session, organization_id)
        _check_known(organization_id, found.type if found else None, field=field, types=types)
        assert found is not None
        return found


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


async def upsert_from_event(
    session: AsyncSession, data: contracts.OrganizationCreated | contracts.OrganizationChanged
) -> OrganizationRef:
    return await upsert(
        session,
        organization_id=data.organization_id,
        type=data.type.value,
        name=data.name,
        parent_id=data.parent_id,
        kommunenummer=data.kommunenummer,
        enhetsnummer=data.enhetsnummer,
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
    _check_known(organization_id, ref.type if ref else None, field=field, types=types)
    assert ref is not None
    return ref


def _check_known(organization_id: uuid.UUID, type: str | None, *, field: str, types: set[str]) -> None:
    if type is None:
        raise UnknownOrganization(f"No organization {organization_id} in the directory", field=field)
    if type not in types:
        raise UnknownOrganization(
            f"Organization {organization_id} is a {type}, expected {' or '.join(sorted(types))}",
            field=field,
        )


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
