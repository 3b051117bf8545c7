"""Opening a case on PostgreSQL in one round trip: the case, its timeline entry, its outbox event and
its eleven domains as one prepared statement (data-modifying CTEs) on the request's transaction.

The hot path of ``POST /cases`` (docs/benchmarks.md). The checks, the timeline snapshot and the event
payload come from the same functions as :func:`case_api.cases.service.open_case`, which
``tests/case_api/cases/test_open_path.py`` holds it to; SQLite (the embedded mode) takes that path."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any, cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer, require_writer
from case_api.audit import service as audit
from case_api.cases.errors import InvalidCaseChange, OpenCaseExists
from case_api.cases.models import Case, CaseStatus, MunicipalityStatus
from case_api.cases.schemas import CaseCreate
from case_api.cases.service import CASE_FIELDS, check_unit_in_scope, open_case_of
from case_api.domains.models import Domain, DomainStatus
from case_api.events import case_facts
from case_api.organizations import service as organizations
from case_api.persons.models import Person
from shared.context import current_correlation_id
from shared.contracts import events as contracts
from shared.db import asyncpg_connection, new_id, utcnow
from shared.outbox import envelope

OPEN_CASE = """
WITH person AS (
    SELECT id, given_name, family_name, birth_date FROM case_person WHERE id = $2
), opened AS (
    INSERT INTO case_case (id, person_id, current_unit_id, region_id, planning_basis, opened_at, status,
        status_changed_at, priority_groups, release_destination, destination_note, municipality_status,
        nav_office_id, created_by, created_at, updated_at, version)
    SELECT $1, person.id, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $8, $8, 1
    FROM person
    RETURNING id
), timeline AS (
    INSERT INTO case_timeline (id, case_id, at, actor, actor_role, actor_organization_id, action, entity,
        entity_id, before, after, correlation_id)
    SELECT $15, opened.id, $8, $14, $16, $17, 'case.opened', 'case', opened.id::text, 'null'::jsonb,
        $18::jsonb, $19
    FROM opened
), outbox AS (
    INSERT INTO case_outbox (id, type, source, subject, correlation_id, occurred_at, data, attempts)
    SELECT $20, $21, $22, $23, $24, $25, $26::jsonb, 0 FROM opened
), domains AS (
    INSERT INTO case_domain (id, case_id, domain, status, hostel_only, updated_at, updated_by, version)
    SELECT domain.id, opened.id, domain.name, $27, false, $8, $14, 1
    FROM opened, unnest($28::uuid[], $29::text[]) AS domain (id, name)
)
SELECT given_name, family_name, birth_date FROM person
"""


async def open_case(session: AsyncSession, *, viewer: Viewer, data: CaseCreate) -> tuple[Case, Person] | None:
    """As :func:`case_api.cases.service.open_case`, in one statement; None on another driver."""
    connection = await asyncpg_connection(session)
    if connection is None:
        return None
    require_writer(viewer)
    region_id = await check_unit_in_scope(session, viewer, data.current_unit_id, field="current_unit_id")
    if data.nav_office_id is not None:
        await organizations.require(session, data.nav_office_id, field="nav_office_id", types={"nav_office"})
    now = utcnow()
    opened_at = data.opened_at or now
    if opened_at > now:
        raise InvalidCaseChange("A case cannot be opened in the future", field="opened_at")
    # The case as the ORM path would hold it after its INSERT: the source of the snapshot, the
    # event's facts and the answer.
    case: Any = SimpleNamespace(
        id=new_id(),
        person_id=data.person_id,
        current_unit_id=data.current_unit_id,
        region_id=region_id,
        planning_basis=data.planning_basis,
        opened_at=opened_at,
        status=CaseStatus.INTAKE,
        status_changed_at=now,
        priority_groups=[group.value for group in data.priority_groups],
        release_destination=data.release_destination,
        destination_note=data.destination_note,
        registered_kommunenummer=None,
        intended_kommunenummer=None,
        responsible_kommunenummer=None,
        municipality_status=MunicipalityStatus.UNRESOLVED,
        municipality_note=None,
        nav_office_id=data.nav_office_id,
        effective_release_date=None,
        closed_at=None,
        created_by=viewer.subject,
        created_at=now,
        updated_at=now,
        version=1,
    )
    event = envelope(
        contracts.CaseOpened(
            **case_facts(case), planning_basis=case.planning_basis.value, opened_at=opened_at.isoformat()
        ),
        subject=f"case/{case.id}",
    )
    domains = list(Domain)
    try:
        row = await connection.fetchrow(
            OPEN_CASE,
            case.id,
            case.person_id,
            case.current_unit_id,
            region_id,
            case.planning_basis.value,
            opened_at,
            case.status.value,
            now,
            json.dumps(case.priority_groups),
            case.release_destination.value,
            case.destination_note,
            case.municipality_status.value,
            case.nav_office_id,
            viewer.subject,
            new_id(),
            viewer.role.value,
            viewer.organization_id,
            json.dumps(audit.snapshot(case, CASE_FIELDS)),
            current_correlation_id(),
            event.id,
            event.type,
            event.source,
            event.subject,
            event.correlation_id,
            event.occurred_at,
            json.dumps(event.data),
            DomainStatus.NOT_ASSESSED.value,
            [new_id() for _ in domains],
            [domain.value for domain in domains],
        )
    except asyncpg.UniqueViolationError:
        # The unique index on open cases, as on the ORM path: the failed transaction is rolled back
        # so that the open case can be read and named.
        await session.rollback()
        existing = await open_case_of(session, case.person_id)
        if existing is None:
            raise
        raise OpenCaseExists(person_id=case.person_id, case_id=existing) from None
    if row is None:
        raise InvalidCaseChange(f"No person {data.person_id}", field="person_id")
    person = SimpleNamespace(id=case.person_id, **dict(row))
    return cast(Case, case), cast(Person, person)
