"""Service market providers: the catalogue of who comes to the markets, shared by all units.
Flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer
from case_api.market import access
from case_api.market.errors import InvalidMarketChange, ProviderNotFound
from case_api.market.models import MarketProvider
from case_api.market.schemas import ProviderCreate, ProviderUpdate
from case_api.organizations import service as organizations
from shared.db import utcnow


async def create_provider(session: AsyncSession, *, viewer: Viewer, data: ProviderCreate) -> MarketProvider:
    access.require_market_writer(viewer)
    if await organizations.get(session, data.organization_id) is None:
        raise organizations.UnknownOrganization(
            f"No organization {data.organization_id} in the directory", field="organization_id"
        )
    provider = MarketProvider(
        organization_id=data.organization_id,
        name=data.name,
        kind=data.kind,
        active=data.active,
        created_by=viewer.subject,
    )
    session.add(provider)
    await session.flush()
    return provider


async def get_provider(session: AsyncSession, *, viewer: Viewer, provider_id: uuid.UUID) -> MarketProvider:
    access.require_market_reader(viewer)
    provider = await session.get(MarketProvider, provider_id)
    if provider is None:
        raise ProviderNotFound(f"No provider {provider_id}")
    return provider


async def update_provider(
    session: AsyncSession, *, viewer: Viewer, provider: MarketProvider, data: ProviderUpdate
) -> MarketProvider:
    access.require_market_writer(viewer)
    changes = data.model_dump(exclude_unset=True)
    if not any(getattr(provider, name) != value for name, value in changes.items()):
        return provider
    for name, value in changes.items():
        setattr(provider, name, value)
    provider.updated_at = utcnow()
    await session.flush()
    return provider


async def list_providers(
    session: AsyncSession, *, viewer: Viewer, active: bool | None = None
) -> list[MarketProvider]:
    access.require_market_reader(viewer)
    query = select(MarketProvider).order_by(col(MarketProvider.name), col(MarketProvider.id))
    if active is not None:
        query = query.where(col(MarketProvider.active) == active)
    return list((await session.execute(query)).scalars())


async def require_provider_for_change(
    session: AsyncSession, *, provider_id: uuid.UUID, field: str, active: bool = False
) -> MarketProvider:
    """A provider named in a body: 422 on `field` when unknown or, with `active`, inactive."""
    provider = await session.get(MarketProvider, provider_id)
    if provider is None:
        raise InvalidMarketChange(f"No provider {provider_id}", field=field)
    if active and not provider.active:
        raise InvalidMarketChange("The provider is not active", field=field)
    return provider


async def providers_by_id(
    session: AsyncSession, provider_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, MarketProvider]:
    ids = set(provider_ids)
    if not ids:
        return {}
    rows = await session.execute(select(MarketProvider).where(col(MarketProvider.id).in_(ids)))
    return {provider.id: provider for provider in rows.scalars()}
