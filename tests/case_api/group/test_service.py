from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import TimelineEntry
from case_api.cases.models import Case
from case_api.group import service
from case_api.group.errors import InvalidMember
from case_api.group.models import GroupMember, GroupRole
from case_api.models import CaseOutbox
from case_api.organizations.service import UnknownOrganization
from shared.db import unit_of_work
from tests.case_api.conftest import Directory, open_case


async def test_add_member_from_receipt_adds_a_contact_with_a_service_timeline_entry(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case_body = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    case_id = uuid.UUID(case_body["id"])
    async with unit_of_work(sessionmaker) as session:
        case = await session.get(Case, case_id)
        assert case is not None
        member = await service.add_member_from_receipt(
            session,
            viewer_subject="municipality-receipts",
            case=case,
            organization_id=directory.oslo,
            person_name="Siri Bakken",
            role=GroupRole.MUNICIPALITY_SOCIAL_SERVICES,
            contact_phone="+47 23 00 00 00",
            contact_email="siri.bakken@oslo.kommune.no",
        )
        member_id = member.id
    async with sessionmaker() as session:
        stored = await session.get(GroupMember, member_id)
        entry = (
            await session.execute(select(TimelineEntry).where(TimelineEntry.entity_id == str(member_id)))
        ).scalar_one()
        events = (
            (await session.execute(select(CaseOutbox).where(CaseOutbox.subject == f"case/{case_id}")))
            .scalars()
            .all()
        )
    assert stored is not None
    assert (stored.case_id, stored.post_release_contact, stored.is_chair) == (case_id, True, False)
    assert stored.added_by == "municipality-receipts"
    assert member.member_until is None
    assert (entry.action, entry.actor, entry.actor_role) == (
        "group.member_added",
        "municipality-receipts",
        "service",
    )
    assert entry.after is not None
    assert entry.after["organization_id"] == str(directory.oslo)
    assert "case.group_changed.v1" in [event.type for event in events]


async def test_add_member_from_receipt_rejects_an_unknown_organization_and_a_bad_email(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case_body = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    async with sessionmaker() as session:
        case = await session.get(Case, uuid.UUID(case_body["id"]))
        assert case is not None
        with pytest.raises(UnknownOrganization):
            await service.add_member_from_receipt(
                session,
                viewer_subject="receipts",
                case=case,
                organization_id=uuid.uuid4(),
                person_name="Siri Bakken",
                role=GroupRole.NAV,
                contact_phone=None,
                contact_email=None,
            )
        with pytest.raises(InvalidMember) as raised:
            await service.add_member_from_receipt(
                session,
                viewer_subject="receipts",
                case=case,
                organization_id=directory.oslo,
                person_name="Siri Bakken",
                role=GroupRole.NAV,
                contact_phone=None,
                contact_email="not an address",
            )
        assert raised.value.extensions["field"] == "contact_email"
