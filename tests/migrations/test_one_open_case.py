"""The revision that allows one open case per person, on PostgreSQL and on SQLite (the embedded mode):
it stops on a database where a person already has several open cases, then holds the rule, and its
downgrade lifts it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from case_api.cases.models import Case, CaseStatus, PlanningBasis
from case_api.persons.models import Person
from shared.db import create_engine, create_sessionmaker, unit_of_work
from tests.conftest import create_database, drop_database, run_alembic
from tests.infra import Postgres, unique_name

BEFORE = "a5d000000001"  # the revision before the rule


@pytest.fixture(params=["postgresql", "sqlite"])
async def url(request: pytest.FixtureRequest, postgres: Postgres, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'open.sqlite3'}"
        return
    name = unique_name("tilbake_open_case")
    try:
        yield await create_database(postgres, name)
    finally:
        await drop_database(postgres, name)


async def _person(engine: AsyncEngine) -> uuid.UUID:
    person = Person(
        given_name="Kari",
        family_name="Nordmann",
        birth_date=date(1988, 5, 17),
        identity_hash=uuid.uuid4().hex,
        identity_ciphertext="placeholder",
        created_by="test",
    )
    async with unit_of_work(create_sessionmaker(engine)) as session:
        session.add(person)
    return person.id


async def _case(
    engine: AsyncEngine, person_id: uuid.UUID, status: CaseStatus = CaseStatus.INTAKE
) -> uuid.UUID:
    case = Case(
        person_id=person_id,
        current_unit_id=uuid.uuid4(),
        planning_basis=PlanningBasis.FINAL_JUDGMENT,
        status=status,
        created_by="test",
    )
    async with unit_of_work(create_sessionmaker(engine)) as session:
        session.add(case)
    return case.id


async def test_the_upgrade_stops_on_several_open_cases_then_holds_one_per_person(url: str) -> None:
    await asyncio.to_thread(run_alembic, command.upgrade, url, BEFORE)
    engine = create_engine(url)
    try:
        person = await _person(engine)
        first = await _case(engine, person)
        await _case(engine, person, CaseStatus.PLANNING)
        await _case(engine, person, CaseStatus.CLOSED)

        with pytest.raises(RuntimeError, match="1 person"):
            await asyncio.to_thread(run_alembic, command.upgrade, url, "head")

        async with unit_of_work(create_sessionmaker(engine)) as session:
            stored = await session.get(Case, first)
            assert stored is not None
            stored.status = CaseStatus.CLOSED
        await asyncio.to_thread(run_alembic, command.upgrade, url, "head")

        with pytest.raises(IntegrityError):
            await _case(engine, person)
        await _case(engine, person, CaseStatus.CLOSED)  # closed cases are not counted
        await _case(engine, await _person(engine))  # nor other persons' cases

        await asyncio.to_thread(run_alembic, command.downgrade, url, BEFORE)
        await _case(engine, person)
    finally:
        await engine.dispose()
