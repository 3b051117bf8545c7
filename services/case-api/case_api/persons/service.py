"""Persons: registered once, found by a keyed hash of the identity number. Flush, never commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api.access import Viewer, case_visibility, require_reader, require_writer
from case_api.cases.models import Case
from case_api.persons.crypto import IdentityVault
from case_api.persons.errors import PersonExists, PersonNotFound
from case_api.persons.models import Person
from case_api.persons.schemas import PersonCreate
from shared.auth import Role


async def register(
    session: AsyncSession, *, viewer: Viewer, vault: IdentityVault, data: PersonCreate
) -> Person:
    require_writer(viewer)
    number = data.identity_number.get_secret_value()
    lookup = vault.lookup_hash(number)
    existing = (
        await session.execute(select(col(Person.id)).where(col(Person.identity_hash) == lookup))
    ).scalar()
    if existing is not None:
        raise PersonExists("This person is already registered", person_id=existing)
    person = Person(
        given_name=data.given_name,
        family_name=data.family_name,
        birth_date=data.resolved_birth_date(),
        identity_hash=lookup,
        identity_ciphertext=vault.encrypt(number),
        created_by=viewer.subject,
    )
    session.add(person)
    await session.flush()
    return person


@dataclass(frozen=True)
class Match:
    """A lookup's person, and whether the caller may see its name and birth date."""

    person: Person
    details: bool


async def find_by_identity_number(
    session: AsyncSession, *, viewer: Viewer, vault: IdentityVault, number: str
) -> Match:
    """For the roles that register persons: the person with this number (404 if none), with
    ``details`` by the rule of :func:`may_see`."""
    require_writer(viewer)
    person = (
        await session.execute(select(Person).where(col(Person.identity_hash) == vault.lookup_hash(number)))
    ).scalar_one_or_none()
    if person is None:
        raise PersonNotFound("No person with that identity number")
    return Match(person=person, details=await may_see(session, viewer, person.id))


async def may_see(session: AsyncSession, viewer: Viewer, person_id: uuid.UUID) -> bool:
    """Whether the viewer may read the person's name and birth date: admin and auditor; a caller
    who sees one of the person's cases; a writer while the person has no case (to open the first)."""
    if viewer.role in (Role.ADMIN, Role.AUDITOR):
        return True
    has_visible_case = (
        await session.execute(
            select(exists().where(col(Case.person_id) == person_id, case_visibility(viewer)))
        )
    ).scalar()
    if has_visible_case:
        return True
    if not viewer.can_write:
        return False
    has_any_case = (await session.execute(select(exists().where(col(Case.person_id) == person_id)))).scalar()
    return not has_any_case


async def get_visible(session: AsyncSession, *, viewer: Viewer, person_id: uuid.UUID) -> Person:
    """A person the viewer may see (:func:`may_see`); 404 otherwise, as for an unknown id."""
    require_reader(viewer)
    person = await session.get(Person, person_id)
    if person is None or not await may_see(session, viewer, person.id):
        raise PersonNotFound(f"No person {person_id} that you may see")
    return person
