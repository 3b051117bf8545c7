"""The inmate behind a case, as the service market sees it: the case within the viewer's market
scope, and the person's name as the market shows it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import CaseNotFound, Viewer
from case_api.cases.models import Case
from case_api.market import access
from case_api.persons.models import Person


def display_name(person: Person) -> str:
    """Given name and the family name's initial: "Kari N."."""
    initial = person.family_name.strip()[:1].upper()
    return f"{person.given_name} {initial}." if initial else person.given_name


async def load_case(
    session: AsyncSession, *, viewer: Viewer, case_id: uuid.UUID, for_update: bool = False
) -> Case:
    """The case if its current unit is in the viewer's market scope; 404 otherwise."""
    query = select(Case).where(col(Case.id) == case_id)
    if for_update:
        query = query.with_for_update()
    case = (await session.execute(query)).scalars().first()
    if case is None or not await access.in_scope(session, viewer, case.current_unit_id):
        raise CaseNotFound(f"No case {case_id} that you may see")
    return case


async def person_names(session: AsyncSession, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Person]:
    """The person behind each case."""
    ids = set(case_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(col(Case.id), Person)
        .join(Person, col(Person.id) == col(Case.person_id))
        .where(col(Case.id).in_(ids))
    )
    return {row[0]: row[1] for row in rows.all()}
