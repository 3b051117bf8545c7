"""One case read on PostgreSQL in one round trip: the case with its person, and the access-log row of
the read, as one prepared statement on the request's own transaction.

This is the hot path of ``GET /cases/{id}`` (docs/benchmarks.md). It serves the roles whose scope
is a column of the case (admin and auditor: all; coordinator: the region; prison staff: the unit),
the same rules as :func:`case_api.access.case_visibility`, which
``tests/case_api/cases/test_read_path.py`` holds it to. Consent-gated roles and other drivers
(SQLite in the embedded mode) take the ORM path."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import CaseNotFound, Viewer, access_basis, require_reader
from case_api.cases.models import Case, CaseStatus
from case_api.persons.models import Person
from shared.auth import Role
from shared.context import current_correlation_id
from shared.db import asyncpg_connection, new_id, utcnow
from shared.directory import UNIT_TYPES

# Every column of the case table, so a new one reaches the answer as on the ORM path.
_CASE_COLUMNS = ", ".join(f"c.{column.name}" for column in Case.__table__.columns)  # type: ignore[attr-defined]
_READ = f"""
WITH found AS (
    SELECT {_CASE_COLUMNS}, p.given_name, p.family_name, p.birth_date
    FROM case_case c JOIN case_person p ON p.id = c.person_id
    WHERE c.id = $1 AND {{scope}}
), logged AS (
    INSERT INTO case_access_log (id, at, person_id, case_id, actor, actor_role,
        actor_organization_id, what, basis, correlation_id)
    SELECT $2, $3, found.person_id, found.id, $4, $5, $6, 'case', $7, $8 FROM found
)
SELECT * FROM found
"""
READ_CASE = {
    "all": _READ.format(scope="$9::uuid IS NULL"),
    "region": _READ.format(scope="c.region_id = $9"),
    "unit": _READ.format(scope="c.current_unit_id = $9"),
}


def column_scope(viewer: Viewer) -> tuple[str, uuid.UUID | None] | None:
    """The viewer's scope as one column and value, or None when it is not that simple."""
    role, organization = viewer.role, viewer.organization
    if role in (Role.ADMIN, Role.AUDITOR):
        return "all", None
    if organization is None:
        return None
    if role is Role.COORDINATOR and viewer.region_id is not None:
        return "region", viewer.region_id
    if role is Role.PRISON_STAFF and organization.type in UNIT_TYPES:
        return "unit", organization.id
    return None


async def read_case(session: AsyncSession, viewer: Viewer, case_id: uuid.UUID) -> tuple[Case, Person] | None:
    """The case and its person with the read logged, or None where this path does not serve the
    viewer; :class:`CaseNotFound` when the case is not one the viewer may see."""
    require_reader(viewer)
    scope = column_scope(viewer)
    if scope is None:
        return None
    connection = await asyncpg_connection(session)
    if connection is None:
        return None
    kind, value = scope
    row = await connection.fetchrow(
        READ_CASE[kind],
        case_id,
        new_id(),
        utcnow(),
        viewer.subject,
        viewer.role.value,
        viewer.organization_id,
        access_basis(viewer),
        current_correlation_id(),
        value,
    )
    if row is None:
        raise CaseNotFound(f"No case {case_id} that you may see")
    fields: dict[str, Any] = dict(row)
    groups = fields["priority_groups"]
    fields["priority_groups"] = json.loads(groups) if isinstance(groups, str | bytes) else groups
    fields["status"] = CaseStatus(fields["status"])
    person = SimpleNamespace(
        id=fields["person_id"],
        given_name=fields.pop("given_name"),
        family_name=fields.pop("family_name"),
        birth_date=fields.pop("birth_date"),
    )
    # Plain records with the attributes the response reads, not ORM objects: no identity map.
    return cast(Case, SimpleNamespace(**fields)), cast(Person, person)
