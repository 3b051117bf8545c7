"""A unit's escort capacity: the officers available per hour to walk inmates to the service market.
Flush, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer
from case_api.market import access
from case_api.market.models import MarketUnitCapacity
from shared.db import utcnow

DEFAULT_ESCORTS_AVAILABLE = 2


async def get_capacity(session: AsyncSession, unit_id: uuid.UUID) -> MarketUnitCapacity | None:
    """The unit's row; None while never set (then `DEFAULT_ESCORTS_AVAILABLE` applies)."""
    return await session.get(MarketUnitCapacity, unit_id)


async def put_capacity(
    session: AsyncSession, *, viewer: Viewer, unit_id: uuid.UUID, escorts_available: int
) -> MarketUnitCapacity:
    access.require_market_writer(viewer)
    row = await get_capacity(session, unit_id)
    if row is None:
        row = MarketUnitCapacity(
            unit_id=unit_id, escorts_available=escorts_available, updated_by=viewer.subject
        )
        session.add(row)
    elif row.escorts_available != escorts_available:
        row.escorts_available = escorts_available
        row.updated_by = viewer.subject
        row.updated_at = utcnow()
    await session.flush()
    return row
