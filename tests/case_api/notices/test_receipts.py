"""notice.receipt_accepted.v1: the contact a recipient names joins the case's responsibility group."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.audit.models import TimelineEntry
from case_api.config import Settings
from case_api.consumer import make_handler
from case_api.group.models import GroupMember
from case_api.main import create_app
from case_api.models import CaseInbox
from case_api.organizations import service as organizations
from case_api.organizations.service import FactsCache
from shared.bus import RabbitMQBus
from shared.contracts.events import MalformedEvent, NoticeReceiptAccepted
from shared.db import unit_of_work
from shared.events import EventEnvelope
from tests.case_api.conftest import Directory, open_case
from tests.conftest import auth, running, test_settings
from tests.infra import RabbitMQ, unique_name

CONTACT = {"name": "Lise Bolig", "phone": "+47 21 80 21 80", "email": "lise.bolig@oslo.kommune.no"}
SUBSTITUTE = {"name": "Per Vikar", "phone": None, "email": "per.vikar@oslo.kommune.no"}


def receipt_event(case_id: object, organization_id: object, /, **data: Any) -> EventEnvelope:
    payload = NoticeReceiptAccepted.model_validate(
        {
            "notice_id": uuid.uuid4(),
            "case_id": case_id,
            "recipient_organization_id": organization_id,
            "recipient_kind": "municipality",
            "kind": "milestone",
            "milestone_days": 30,
            "receipt_id": uuid.uuid4(),
            "contact": CONTACT,
            **data,
        }
    )
    return EventEnvelope(
        type=payload.TYPE, source=payload.PRODUCER, subject=f"case/{case_id}", data=payload.data()
    )


async def members(client: httpx.AsyncClient, directory: Directory, case_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/cases/{case_id}/group", headers=directory.coordinator_east)
    assert response.status_code == 200, response.text
    return list(response.json()["members"])


def test_case_api_binds_its_queue_to_accepted_receipts() -> None:
    assert NoticeReceiptAccepted.TYPE in Settings().binding_keys


async def test_the_contact_joins_the_group_once_however_often_the_event_comes(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    handle = make_handler(sessionmaker, FactsCache())
    event = receipt_event(case["id"], directory.oslo)

    await handle(event)
    await handle(event)  # redelivered: the inbox absorbs it
    # A receipt for the next milestone names the same person: not a second member either.
    await handle(receipt_event(case["id"], directory.oslo, milestone_days=7))

    group = await members(case_client, directory, case["id"])
    assert [
        (m["person_name"], m["role"], m["organization_id"], m["post_release_contact"], m["active"])
        for m in group
    ] == [("Lise Bolig", "municipality_social_services", str(directory.oslo), True, True)]
    assert (group[0]["contact_phone"], group[0]["contact_email"]) == (CONTACT["phone"], CONTACT["email"])
    async with sessionmaker() as session:
        entries = (
            (
                await session.execute(
                    select(TimelineEntry).where(
                        col(TimelineEntry.case_id) == uuid.UUID(case["id"]),
                        col(TimelineEntry.action) == "group.member_added",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(e.actor, e.actor_role) for e in entries] == [
        (f"notify-worker:receipt:{event.data['receipt_id']}", "service")
    ]


async def test_the_role_follows_the_organizations_type_and_the_substitute_is_no_contact(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    handle = make_handler(sessionmaker, FactsCache())
    await handle(receipt_event(case["id"], directory.nav_grunerlokka, substitute=SUBSTITUTE))
    await handle(
        receipt_event(
            case["id"], directory.health_trust, contact={"name": "Dr. Helse", "phone": "22 11 22 11"}
        )
    )
    await handle(receipt_event(case["id"], directory.ngo, contact={"name": "Frivillig Fredrik"}))

    group = await members(case_client, directory, case["id"])
    assert sorted((m["person_name"], m["role"], m["post_release_contact"]) for m in group) == [
        ("Dr. Helse", "health", True),
        ("Frivillig Fredrik", "other", True),
        ("Lise Bolig", "nav", True),
        ("Per Vikar", "nav", False),
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"contact": {"name": "Lise Bolig", "email": "not-an-address"}},
        {"contact": {"name": ""}},
        {"recipient_organization_id": str(uuid.uuid4())},
    ],
    ids=["bad-email", "empty-name", "unknown-organization"],
)
async def test_receipts_the_group_cannot_take_are_logged_and_skipped_without_raising(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    data: dict[str, Any],
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await make_handler(sessionmaker, FactsCache())(receipt_event(case["id"], directory.oslo, **data))
    assert await members(case_client, directory, case["id"]) == []


@pytest.mark.parametrize(
    "data",
    [{"contact": {"phone": "+47 21 80 21 80"}}, {"contact": None}, {"case_id": "not-a-case-id"}],
    ids=["no-name", "no-contact", "bad-case-id"],
)
async def test_receipts_that_break_the_contract_are_refused_before_anything_is_written(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    data: dict[str, Any],
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    good = receipt_event(case["id"], directory.oslo)
    broken = good.model_copy(update={"data": {**good.data, **data}})
    with pytest.raises(MalformedEvent):
        await make_handler(sessionmaker, FactsCache())(broken)
    async with sessionmaker() as session:
        assert await session.get(CaseInbox, broken.id) is None
    assert await members(case_client, directory, case["id"]) == []


async def test_a_bad_contact_does_not_keep_out_a_good_substitute(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await make_handler(sessionmaker, FactsCache())(
        receipt_event(
            case["id"], directory.oslo, contact={"name": "X", "phone": "call me"}, substitute=SUBSTITUTE
        )
    )
    assert [
        (m["person_name"], m["post_release_contact"])
        for m in await members(case_client, directory, case["id"])
    ] == [("Per Vikar", False)]


async def test_an_unknown_or_closed_case_is_skipped(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    url = f"/api/v1/cases/{case['id']}"
    etag = (await case_client.get(url, headers=directory.coordinator_east)).headers["etag"]
    closed = await case_client.post(
        f"{url}/status", json={"status": "closed"}, headers={**directory.coordinator_east, "If-Match": etag}
    )
    assert closed.status_code == 200, closed.text
    handle = make_handler(sessionmaker, FactsCache())
    await handle(receipt_event(case["id"], directory.oslo))
    await handle(receipt_event(uuid.uuid4(), directory.oslo))
    assert await members(case_client, directory, case["id"]) == []
    async with sessionmaker() as session:
        anywhere = (await session.execute(select(GroupMember))).scalars().all()
    assert anywhere == []


async def test_an_accepted_receipt_from_the_broker_reaches_the_group(
    database_url: str,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    rabbitmq: RabbitMQ,
    exchange_name: str,
    amqp_queues: list[str],
) -> None:
    """Real RabbitMQ, case-api's default binding keys: the event is routed to case-api's queue."""
    queue = unique_name("test.case-api")
    amqp_queues.append(queue)
    settings = test_settings(
        "case_api.config", database_url, amqp_url=rabbitmq.url, event_exchange=exchange_name, queue=queue
    )
    region, unit, municipality = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(committed_sessionmaker) as session:
        await organizations.upsert(session, organization_id=region, type="region", name="Region øst")
        await organizations.upsert(
            session, organization_id=unit, type="prison", name="Oslo fengsel", parent_id=region
        )
        await organizations.upsert(
            session, organization_id=municipality, type="municipality", name="Oslo", kommunenummer="0301"
        )
    publisher = RabbitMQBus(rabbitmq.url, exchange=exchange_name)
    admin = auth("admin")
    try:
        async with running(create_app(settings)) as client:
            deadline = time.monotonic() + 15
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "case-api never became ready"
                await asyncio.sleep(0.1)
            case = await open_case(client, admin, unit=unit)
            await publisher.publish(receipt_event(case["id"], municipality))
            deadline = time.monotonic() + 15
            group: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not group:
                response = await client.get(f"/api/v1/cases/{case['id']}/group", headers=admin)
                group = response.json()["members"]
                await asyncio.sleep(0.1)
            assert [(m["person_name"], m["organization_id"]) for m in group] == [
                ("Lise Bolig", str(municipality))
            ]
    finally:
        await publisher.close()
