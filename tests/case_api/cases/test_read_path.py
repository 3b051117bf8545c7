"""The one-statement case read (case_api.cases.reads) against the ORM path it stands in for: for
every role it serves, the same cases visible, the same answer, the same access-log row."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.access import CaseNotFound, Viewer, load_case_with_person
from case_api.audit import service as audit
from case_api.audit.models import AccessLogEntry
from case_api.cases import reads
from case_api.cases.router import to_read
from case_api.organizations import service as organizations
from shared.auth import Principal, Role
from tests.case_api.conftest import Directory, open_case

LOGGED = ("person_id", "case_id", "actor", "actor_role", "actor_organization_id", "what", "basis")


async def viewer(session: AsyncSession, role: Role, organization: uuid.UUID | None) -> Viewer:
    principal = Principal(
        subject="reader", role=role, organization_id=str(organization) if organization else None
    )
    facts = await organizations.FactsCache().facts(session, organization) if organization else None
    if facts is None:
        return Viewer(principal=principal, organization=None, region_id=None)
    return Viewer(principal=principal, organization=facts.ref(), region_id=facts.region_id)


async def logged(session: AsyncSession, case_id: str) -> list[tuple[object, ...]]:
    rows = await session.execute(
        select(AccessLogEntry).where(col(AccessLogEntry.case_id) == uuid.UUID(case_id))
    )
    found = [tuple(getattr(entry, name) for name in LOGGED) for entry in rows.scalars()]
    await session.execute(delete(AccessLogEntry).where(col(AccessLogEntry.case_id) == uuid.UUID(case_id)))
    return found


@pytest.mark.parametrize(
    ("role", "organization"),
    [
        (Role.ADMIN, None),
        (Role.AUDITOR, None),
        (Role.COORDINATOR, "region_east"),
        (Role.COORDINATOR, "region_south"),
        (Role.PRISON_STAFF, "unit_oslo"),
        (Role.PRISON_STAFF, "unit_sem"),
    ],
    ids=["admin", "auditor", "coordinator-east", "coordinator-south", "staff-oslo", "staff-sem"],
)
async def test_the_fast_read_sees_answers_and_logs_as_the_orm_path(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: Role,
    organization: str | None,
) -> None:
    east = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    south = await open_case(
        case_client, directory.headers("coordinator", directory.region_south), unit=directory.unit_sem
    )
    async with sessionmaker() as session:
        reader = await viewer(session, role, getattr(directory, organization) if organization else None)
        assert reads.column_scope(reader) is not None, "the fast path must serve this role"
        for case in (east, south):
            case_id = uuid.UUID(case["id"])
            try:
                slow = to_read(*await load_case_with_person(session, reader, case_id))
                await audit.record_access(session, reader, reads=[(slow.person.id, case_id)], what="case")
            except CaseNotFound:
                slow = None
            slow_log = await logged(session, case["id"])
            try:
                found = await reads.read_case(session, reader, case_id)
                assert found is not None
                fast = to_read(*found)
            except CaseNotFound:
                fast = None
            fast_log = await logged(session, case["id"])
            assert (fast is None) == (slow is None), f"{role} sees {case['id']} on one path only"
            if fast is not None and slow is not None:
                assert fast.model_dump() == slow.model_dump()
            assert fast_log == slow_log
            assert len(fast_log) == (0 if fast is None else 1)
        await session.rollback()


async def test_consent_gated_roles_take_the_orm_path(
    directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as session:
        for role, organization in (
            (Role.MUNICIPALITY, directory.oslo),
            (Role.NAV, directory.nav_grunerlokka),
            (Role.HEALTH, directory.health_trust),
        ):
            reader = await viewer(session, role, organization)
            assert reads.column_scope(reader) is None
            assert await reads.read_case(session, reader, uuid.uuid4()) is None
