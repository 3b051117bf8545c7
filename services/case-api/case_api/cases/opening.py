"""Opening a case on PostgreSQL in one round trip: the case, its timeline entry, its outbox event and
its eleven domains as one prepared statement (data-modifying CTEs) on the request's transaction.

The hot path of ``POST /cases`` (docs/benchmarks.md). The checks, the timeline snapshot and the event
payload come from the same functions as :func:`case_api.cases.service.open_case`, which
``tests/case_api/cases/test_open_path.py`` holds it to; SQLite (the embedded mode) takes that path."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import cast

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer
from case_api.audit import service as audit
from case_api.cases import service
from case_api.cases.errors import InvalidCaseChange
from case_api.cases.models import Case
from case_api.cases.schemas import CaseCreate
from case_api.cases.service import CASE_FIELDS
from case_api.domains.models import Domain, DomainStatus
from case_api.events import case_facts
from case_api.persons.models import Person
from shared.context import current_correlation_id
from shared.contracts import events as contracts
from shared.db import asyncpg_connection, new_id
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
    # The case as the ORM path builds it, never added to the session: the source of the row, the
    # snapshot, the event's facts and the answer.
    case = await service.new_case(session, viewer=viewer, data=data)
    now, opened_at = case.status_changed_at, case.opened_at
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
            case.region_id,
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
        refusal = await service.second_open_refusal(session, data.person_id)
        if refusal is None:
            raise
        raise refusal from None
    if row is None:
        raise InvalidCaseChange(f"No person {data.person_id}", field="person_id")
    person = SimpleNamespace(id=case.person_id, **dict(row))
    return case, cast(Person, person)
