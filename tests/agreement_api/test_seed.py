"""The directory seed: regions, named units and every current municipality, idempotent."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agreement_api.organizations.models import Organization, OrganizationType
from agreement_api.seed import REGION_UNITS, load_directory
from shared.db import unit_of_work


async def test_seed_loads_every_municipality_once_and_reports_progress(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seen: list[tuple[str, int, int]] = []
    async with unit_of_work(sessionmaker) as session:
        first = await load_directory(
            session, progress=lambda stage, done, total: seen.append((stage, done, total))
        )
    async with unit_of_work(sessionmaker) as session:
        again = await load_directory(session)
        counts = dict(
            (await session.execute(select(Organization.type, func.count()).group_by(Organization.type))).all()
        )
        units = (
            await session.execute(
                select(func.count()).where(
                    Organization.parent_id.is_not(None), Organization.type != OrganizationType.MUNICIPALITY
                )  # type: ignore[union-attr]
            )
        ).scalar_one()
    assert first == {"region": 5, "unit": sum(len(u) for u in REGION_UNITS.values()), "municipality": 357}
    assert again == {"region": 0, "unit": 0, "municipality": 0}
    assert counts[OrganizationType.MUNICIPALITY] == 357
    assert counts[OrganizationType.REGION] == 5
    assert units == first["unit"], "every unit hangs under its region"
    assert seen[-1] == ("municipalities", 357, 357)
    assert any(stage == "regions and units" for stage, _d, _t in seen)
