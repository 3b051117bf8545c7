"""Case rules: opening, listing, changing, status, transfer. Flush, never commit."""

from __future__ import annotations

import uuid
from datetime import date
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import ColumnElement, exists, insert, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api import events
from case_api.access import UNIT_TYPES, Viewer, case_visibility, require_writer
from case_api.audit import service as audit
from case_api.cases.errors import (
    CaseClosed,
    IllegalTransition,
    InvalidCaseChange,
    NotInCustody,
    OpenCaseExists,
    UnitOutsideScope,
)
from case_api.cases.lifecycle import IN_CUSTODY, TRANSITIONS, allowed_next
from case_api.cases.models import Case, CaseStatus
from case_api.cases.schemas import CaseCreate, CaseUpdate
from case_api.domains.models import CaseDomain, Domain, DomainStatus
from case_api.organizations import service as organizations
from case_api.persons.models import Person
from shared.auth import Role
from shared.contracts import events as contracts
from shared.db import new_id, table_of, utcnow
from shared.errors import NotFound
from shared.pagination import as_uuid, aware_datetime, decode_cursor, encode_cursor

CASE_FIELDS = (
    "status",
    "current_unit_id",
    "region_id",
    "priority_groups",
    "release_destination",
    "destination_note",
    "nav_office_id",
)


async def check_unit_in_scope(
    session: AsyncSession, viewer: Viewer, unit_id: uuid.UUID, *, field: str
) -> uuid.UUID | None:
    """The unit's region, after checking the unit exists and the viewer may place a case there."""
    unit = await viewer.organization_facts.require_facts(session, unit_id, field=field, types=set(UNIT_TYPES))
    region_id = unit.region_id
    if viewer.role is Role.COORDINATOR and (viewer.region_id is None or region_id != viewer.region_id):
        raise UnitOutsideScope("The unit is not in your region")
    if viewer.role is Role.PRISON_STAFF and unit.id != viewer.organization_id:
        raise UnitOutsideScope("The unit is not yours")
    return region_id


async def open_case_of(session: AsyncSession, person_id: uuid.UUID) -> uuid.UUID | None:
    """The id of the person's open case, if there is one (there is at most one)."""
    query = select(col(Case.id)).where(
        col(Case.person_id) == person_id, col(Case.status) != CaseStatus.CLOSED
    )
    return (await session.execute(query)).scalar()


async def new_case(session: AsyncSession, *, viewer: Viewer, data: CaseCreate) -> Case:
    """The case to open, not yet added to the session, after the checks every open makes (the
    writer, the unit in scope, the NAV office, the date); the person is checked by the INSERT's path."""
    require_writer(viewer)
    region_id = await check_unit_in_scope(session, viewer, data.current_unit_id, field="current_unit_id")
    if data.nav_office_id is not None:
        await organizations.require(session, data.nav_office_id, field="nav_office_id", types={"nav_office"})
    now = utcnow()
    opened_at = data.opened_at or now
    if opened_at > now:
        raise InvalidCaseChange("A case cannot be opened in the future", field="opened_at")
    return Case(
        person_id=data.person_id,
        current_unit_id=data.current_unit_id,
        region_id=region_id,
        planning_basis=data.planning_basis,
        opened_at=opened_at,
        status_changed_at=now,
        priority_groups=[group.value for group in data.priority_groups],
        release_destination=data.release_destination,
        destination_note=data.destination_note,
        nav_office_id=data.nav_office_id,
        created_by=viewer.subject,
        created_at=now,
        updated_at=now,
    )


async def second_open_refusal(session: AsyncSession, person_id: uuid.UUID) -> OpenCaseExists | None:
    """After an INSERT failed on a unique index: the 409 naming the person's open case, or None when
    it was another index. The unique index on open cases, not a query first, keeps two concurrent
    opens from both passing at no extra statement; the failed transaction is rolled back (the
    request keeps none of it) so that the open case can be read."""
    await session.rollback()
    existing = await open_case_of(session, person_id)
    return None if existing is None else OpenCaseExists(person_id=person_id, case_id=existing)


async def open_case(session: AsyncSession, *, viewer: Viewer, data: CaseCreate) -> tuple[Case, Person]:
    """Open a case for a registered person in a unit, with every domain not yet assessed. A person
    with an open case already is :class:`OpenCaseExists` (409).

    Returns the person too: the answer shows it, and the session holds its objects only weakly,
    so asking again would read the row a second time."""
    case = await new_case(session, viewer=viewer, data=data)
    person = await session.get(Person, data.person_id)
    if person is None:
        raise InvalidCaseChange(f"No person {data.person_id}", field="person_id")
    now, opened_at = case.status_changed_at, case.opened_at
    session.add(case)
    try:
        await session.flush()  # the rows below refer to it, and the unit of work does not order by table
    except IntegrityError:
        refusal = await second_open_refusal(session, data.person_id)
        if refusal is None:
            raise
        raise refusal from None
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="case.opened",
        entity="case",
        entity_id=case.id,
        after=audit.snapshot(case, CASE_FIELDS),
    )
    events.emit(
        session,
        contracts.CaseOpened,
        case,
        planning_basis=case.planning_basis.value,
        opened_at=opened_at.isoformat(),
    )
    await session.flush()
    # One row per domain that nothing in this request reads back: a single INSERT of plain rows
    # rather than eleven ORM objects through the unit of work (the largest part of its cost).
    await session.execute(
        insert(CaseDomain),
        [
            {
                "id": new_id(),
                "case_id": case.id,
                "domain": domain,
                "status": DomainStatus.NOT_ASSESSED,
                "needs": None,
                "goals": None,
                "hostel_only": False,
                "updated_at": now,
                "updated_by": viewer.subject,
                "version": 1,
            }
            for domain in Domain
        ],
    )
    return case, person


async def update_case(session: AsyncSession, *, viewer: Viewer, case: Case, data: CaseUpdate) -> Case:
    """Change priority groups, destination or NAV office (the caller checked If-Match)."""
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed("A closed case cannot change")
    changes = data.model_dump(exclude_unset=True)
    if "nav_office_id" in changes and changes["nav_office_id"] is not None:
        await organizations.require(
            session, changes["nav_office_id"], field="nav_office_id", types={"nav_office"}
        )
    before = audit.snapshot(case, CASE_FIELDS)
    for name, value in changes.items():
        if name == "priority_groups":
            value = [group.value if hasattr(group, "value") else group for group in value or []]
        setattr(case, name, value)
    after = audit.snapshot(case, CASE_FIELDS)
    old, new = audit.changed(before, after)
    if not new:
        return case
    case.updated_at = utcnow()
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="case.updated",
        entity="case",
        entity_id=case.id,
        before=old,
        after=new,
    )
    events.emit(session, contracts.CaseUpdated, case, changed=sorted(new))
    await session.flush()
    return case


async def change_status(
    session: AsyncSession, *, viewer: Viewer, case: Case, status: CaseStatus, reason: str | None
) -> Case:
    """Move the case along its lifecycle; illegal moves are 409 with the allowed ones."""
    if status not in TRANSITIONS[case.status]:
        raise IllegalTransition(
            f"A case in {case.status.value!r} cannot become {status.value!r}",
            current_status=case.status.value,
            allowed_next=allowed_next(case.status),
        )
    old = case.status
    now = utcnow()
    case.status = status
    case.status_changed_at = now
    case.updated_at = now
    if status is CaseStatus.CLOSED:
        case.closed_at = now
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="case.status_changed",
        entity="case",
        entity_id=case.id,
        before={"status": old.value},
        after={"status": status.value, "reason": reason},
    )
    events.emit(
        session,
        contracts.CaseStatusChanged,
        case,
        old_status=old.value,
        new_status=status.value,
        reason=reason,
    )
    if status is CaseStatus.CLOSED:
        events.emit(session, contracts.CaseClosed, case, old_status=old.value, reason=reason)
    await session.flush()
    return case


async def transfer(
    session: AsyncSession, *, viewer: Viewer, case: Case, to_unit_id: uuid.UUID, reason: str | None
) -> Case:
    """Move the case, whole, to another unit (possibly in another region)."""
    if case.status not in IN_CUSTODY:
        raise NotInCustody(
            f"A case in {case.status.value!r} cannot be transferred", current_status=case.status.value
        )
    if to_unit_id == case.current_unit_id:
        raise InvalidCaseChange("The case is already in that unit", field="to_unit_id")
    unit = await organizations.require(session, to_unit_id, field="to_unit_id", types=set(UNIT_TYPES))
    before = {
        "current_unit_id": str(case.current_unit_id),
        "region_id": str(case.region_id) if case.region_id else None,
    }
    from_unit = case.current_unit_id
    case.current_unit_id = unit.id
    case.region_id = await organizations.region_of(session, unit)
    case.updated_at = utcnow()
    after = {
        "current_unit_id": str(case.current_unit_id),
        "region_id": str(case.region_id) if case.region_id else None,
        "reason": reason,
    }
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="case.transferred",
        entity="case",
        entity_id=case.id,
        before=before,
        after=after,
    )
    events.emit(
        session,
        contracts.CaseTransferred,
        case,
        from_unit_id=str(from_unit),
        to_unit_id=str(unit.id),
        reason=reason,
    )
    await session.flush()
    return case


async def list_page(
    session: AsyncSession,
    *,
    viewer: Viewer,
    unit_id: uuid.UUID | None = None,
    kommunenummer: str | None = None,
    release_from: date | None = None,
    release_to: date | None = None,
    statuses: list[CaseStatus] | None = None,
    domain: Domain | None = None,
    domain_status: DomainStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[tuple[Case, Person]], str | None]:
    """Visible cases, newest first, keyset-paginated on (opened_at, id)."""
    conditions: list[ColumnElement[bool]] = [case_visibility(viewer)]
    if unit_id is not None:
        conditions.append(col(Case.current_unit_id) == unit_id)
    if kommunenummer is not None:
        conditions.append(col(Case.responsible_kommunenummer) == kommunenummer)
    if release_from is not None:
        conditions.append(col(Case.effective_release_date) >= release_from)
    if release_to is not None:
        conditions.append(col(Case.effective_release_date) <= release_to)
    if statuses:
        conditions.append(col(Case.status).in_(statuses))
    if domain is not None or domain_status is not None:
        domain_match: list[ColumnElement[bool]] = [col(CaseDomain.case_id) == col(Case.id)]
        if domain is not None:
            domain_match.append(col(CaseDomain.domain) == domain)
        if domain_status is not None:
            domain_match.append(col(CaseDomain.status) == domain_status)
        conditions.append(exists(select(col(CaseDomain.id)).where(*domain_match)))
    if cursor is not None:
        opened_at, last = decode_cursor(cursor, aware_datetime, as_uuid)
        conditions.append(
            # A row comparison, so PostgreSQL starts the index scan at the cursor (the OR form
            # made it walk every newer row first: 22-27 ms at page 1,000 of 100k cases, 0.5 ms so).
            tuple_(col(Case.opened_at), col(Case.id)) < (opened_at, last)
        )
    query = (
        # Columns, not entities: a page of records without the identity map (docs/benchmarks.md).
        select(*table_of(Case).c, *_PERSON_SUMMARY)
        .join(Person, col(Person.id) == col(Case.person_id))
        .where(*conditions)
        .order_by(col(Case.opened_at).desc(), col(Case.id).desc())
        .limit(limit + 1)
    )
    found = (await session.execute(query)).all()
    next_cursor = None
    if len(found) > limit:
        last = found[limit - 1]
        next_cursor = encode_cursor([last.opened_at.isoformat(), str(last.id)])
    rows = [
        (
            cast(Case, row),
            cast(
                Person,
                SimpleNamespace(
                    id=row.person_id,
                    given_name=row.person_given_name,
                    family_name=row.person_family_name,
                    birth_date=row.person_birth_date,
                ),
            ),
        )
        for row in found[:limit]
    ]
    return rows, next_cursor


# The person's columns a case answer shows (CaseRead.person), beside every column of the case.
_PERSON_SUMMARY: tuple[Any, ...] = (
    col(Person.given_name).label("person_given_name"),
    col(Person.family_name).label("person_family_name"),
    col(Person.birth_date).label("person_birth_date"),
)


async def person_of(session: AsyncSession, case: Case) -> Person:
    person = await session.get(Person, case.person_id)
    if person is None:  # pragma: no cover - guarded by the foreign key
        raise NotFound("The case's person is missing")
    return person
