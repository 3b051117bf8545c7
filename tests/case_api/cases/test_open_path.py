"""The one-statement case open (case_api.cases.opening) against the ORM path it stands in for: the
same rows in case_case, case_timeline, case_outbox and case_domain, the same answer, the same
refusals."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.cases import opening, service
from case_api.cases.errors import InvalidCaseChange, OpenCaseExists
from case_api.cases.router import to_read
from case_api.cases.schemas import CaseCreate
from shared.auth import Role
from tests.case_api.cases.test_read_path import viewer
from tests.case_api.conftest import Directory, register_person

VARYING = {"id", "case_id", "entity_id", "at", "opened_at", "status_changed_at", "created_at", "updated_at"}


def steady(row: dict[str, Any]) -> dict[str, Any]:
    """A row without the values that differ between any two opens (ids, clocks)."""
    out = {}
    for key, value in row.items():
        if key in VARYING or key == "occurred_at":
            continue
        if isinstance(value, dict):
            value = steady(value)
        out[key] = value
    return out


async def rows_of(session: AsyncSession, case_id: uuid.UUID) -> dict[str, Any]:
    async def all_rows(sql: str) -> list[dict[str, Any]]:
        result = await session.execute(text(sql), {"case": case_id, "subject": f"case/{case_id}"})
        return [steady(dict(row._mapping)) for row in result]

    return {
        "case": await all_rows("SELECT * FROM case_case WHERE id = :case"),
        "timeline": await all_rows("SELECT * FROM case_timeline WHERE case_id = :case"),
        "outbox": await all_rows(
            "SELECT type, source, subject LIKE 'case/%' AS about_case, data, published_at, attempts"
            " FROM case_outbox WHERE subject = :subject"
        ),
        "domains": sorted(
            (row["domain"], row["status"], row["hostel_only"], row["updated_by"], row["version"])
            for row in await all_rows("SELECT * FROM case_domain WHERE case_id = :case")
        ),
    }


@pytest.mark.parametrize(
    ("role", "organization"),
    [(Role.COORDINATOR, "region_east"), (Role.PRISON_STAFF, "unit_oslo"), (Role.ADMIN, None)],
    ids=["coordinator", "prison-staff", "admin"],
)
async def test_the_fast_open_writes_and_answers_as_the_orm_path(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    role: Role,
    organization: str | None,
) -> None:
    people = [await register_person(case_client, directory.coordinator_east) for _ in range(2)]
    async with sessionmaker() as session:
        opener = await viewer(session, role, getattr(directory, organization) if organization else None)

        def body(person: dict[str, Any]) -> CaseCreate:
            return CaseCreate.model_validate(
                {
                    "person_id": person["id"],
                    "current_unit_id": str(directory.unit_oslo),
                    "planning_basis": "final_judgment",
                    "priority_groups": ["young_person"],
                    "destination_note": "Bor hos søster",
                }
            )

        opened = await opening.open_case(session, viewer=opener, data=body(people[0]))
        assert opened is not None, "the fast path must serve PostgreSQL"
        fast_case, fast_person = opened
        slow_case, slow_person = await service.open_case(session, viewer=opener, data=body(people[1]))
        await session.flush()

        fast_rows, slow_rows = await rows_of(session, fast_case.id), await rows_of(session, slow_case.id)
        for rows in (fast_rows, slow_rows):
            rows["case"][0].pop("person_id")
            rows["outbox"][0]["data"].pop("case_id", None)
        assert fast_rows == slow_rows
        assert len(fast_rows["domains"]) == 11
        assert fast_rows["timeline"][0]["after"]["priority_groups"] == ["young_person"]

        fast_read = to_read(fast_case, fast_person).model_dump(exclude={"id", "person"})
        slow_read = to_read(slow_case, slow_person).model_dump(exclude={"id", "person"})
        for read in (fast_read, slow_read):
            for key in VARYING:
                read.pop(key, None)
        assert fast_read == slow_read
        assert to_read(fast_case, fast_person).person.given_name == people[0]["given_name"]

        await session.commit()  # a conflicting open meets a committed case, as between two requests
        with pytest.raises(OpenCaseExists) as second:
            await opening.open_case(session, viewer=opener, data=body(people[0]))
        assert second.value.extensions["existing_id"] == str(fast_case.id)
        with pytest.raises(InvalidCaseChange):
            await opening.open_case(
                session, viewer=opener, data=body({"id": str(uuid.uuid4()), "given_name": "Ingen"})
            )
        await session.rollback()
    # What the rows hold once committed through the API, read back: the fast path is what serves it.
    answer = await case_client.post(
        "/api/v1/cases",
        json={
            "person_id": (await register_person(case_client, directory.coordinator_east))["id"],
            "current_unit_id": str(directory.unit_oslo),
            "planning_basis": "final_judgment",
        },
        headers=directory.coordinator_east,
    )
    assert answer.status_code == 201, answer.text
    async with sessionmaker() as session:
        stored = await session.execute(
            select(text("count(*)")).select_from(text("case_domain")).where(text("case_id = :case")),
            {"case": uuid.UUID(answer.json()["id"])},
        )
        assert stored.scalar() == 11
