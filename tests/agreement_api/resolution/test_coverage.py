from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agreement_api.agreements.models import CaseRef
from agreement_api.consumer import make_handler
from shared.contracts.events import CaseClosed, CaseMunicipalityChanged, CaseOpened, CaseUpdated
from shared.events import EventEnvelope
from tests import events
from tests.agreement_api.agreements.helpers import activate, create_agreement, directory, organization
from tests.conftest import auth

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def case_event(
    case_id: uuid.UUID, kommunenummer: str | None, status: str = "planning", **kwargs: Any
) -> EventEnvelope:
    return events.case_event(
        case_id,
        kwargs.pop("model", CaseOpened),
        status=status,
        responsible_kommunenummer=kommunenummer,
        **kwargs,
    )


async def test_coverage_ranks_municipalities_without_an_active_agreement(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    orgs = await directory(agreement_client, kommunenummer="3101")
    agreement = await create_agreement(agreement_client, orgs.prison, orgs.municipality)
    await activate(agreement_client, agreement["id"])
    handle = make_handler(sessionmaker)
    cases = {"0301": 3, "4601": 1, "5001": 2, "3101": 4}
    for number, count in cases.items():
        for _ in range(count):
            await handle(case_event(uuid.uuid4(), number, occurred_at=T0))
    await handle(case_event(uuid.uuid4(), None, occurred_at=T0))  # kommunelos: not counted
    closed = uuid.uuid4()
    await handle(case_event(closed, "4601", occurred_at=T0))
    await handle(
        case_event(
            closed,
            "4601",
            status="closed",
            model=CaseClosed,
            old_status="planning",
            occurred_at=T0 + timedelta(1),
        )
    )

    response = await agreement_client.get("/api/v1/coverage", headers=auth("coordinator"))
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"kommunenummer": "0301", "name": "Oslo", "open_cases": 3, "has_active_agreement": False},
        {"kommunenummer": "5001", "name": "Trondheim", "open_cases": 2, "has_active_agreement": False},
        {"kommunenummer": "4601", "name": "Bergen", "open_cases": 1, "has_active_agreement": False},
    ]


async def test_a_moved_case_counts_for_its_new_municipality_and_late_events_are_ignored(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    handle = make_handler(sessionmaker)
    case_id = uuid.uuid4()
    await handle(case_event(case_id, "0301", occurred_at=T0))
    await handle(
        case_event(
            case_id,
            "4601",
            model=CaseMunicipalityChanged,
            old_responsible_kommunenummer="0301",
            new_responsible_kommunenummer="4601",
            old_municipality_status="confirmed",
            new_municipality_status="confirmed",
            occurred_at=T0 + timedelta(2),
        )
    )
    await handle(
        case_event(
            case_id, "0301", model=CaseUpdated, changed=["nav_office_id"], occurred_at=T0 + timedelta(1)
        )
    )  # late
    async with sessionmaker() as session:
        ref = await session.get(CaseRef, case_id)
    assert ref is not None
    assert ref.responsible_kommunenummer == "4601"
    response = await agreement_client.get("/api/v1/coverage", headers=auth("admin"))
    assert [row["kommunenummer"] for row in response.json()] == ["4601"]


async def test_a_redelivered_event_is_handled_once(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    handle = make_handler(sessionmaker)
    case_id = uuid.uuid4()
    opened = case_event(case_id, "0301", occurred_at=T0)
    await handle(opened)
    await handle(
        case_event(
            case_id,
            "0301",
            status="closed",
            model=CaseClosed,
            old_status="planning",
            occurred_at=T0 + timedelta(1),
        )
    )
    await handle(opened)  # redelivery of an event already handled
    async with sessionmaker() as session:
        ref = await session.get(CaseRef, case_id)
    assert ref is not None
    assert ref.status == "closed"


async def test_a_district_party_covers_its_municipality(
    agreement_client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    prison = await organization(agreement_client, type="prison", name="Oslo fengsel")
    district = await organization(
        agreement_client, type="district", name="Bydel Grünerløkka", kommunenummer="0301"
    )
    agreement = await create_agreement(agreement_client, prison, district)
    await activate(agreement_client, agreement["id"])
    await make_handler(sessionmaker)(case_event(uuid.uuid4(), "0301", occurred_at=T0))
    response = await agreement_client.get("/api/v1/coverage", headers=auth("admin"))
    assert response.json() == []


@pytest.mark.parametrize("role", ["nav", "municipality", "integration_admin", "service"])
async def test_coverage_is_for_admins_and_coordinators(
    agreement_client: httpx.AsyncClient, role: str
) -> None:
    assert (await agreement_client.get("/api/v1/coverage", headers=auth(role))).status_code == 403
