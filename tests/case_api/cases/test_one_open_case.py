"""A person has one open case at a time: a second open is 409 naming the open one, a transfer is no
new case, and after the case is closed the person may get a new one."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import AccessLogEntry
from case_api.cases.lifecycle import OPEN, TRANSITIONS
from case_api.cases.models import Case, CaseStatus
from case_api.models import CaseOutbox
from tests.case_api.conftest import Directory, open_case


def _body(person_id: str, unit: uuid.UUID) -> dict[str, Any]:
    return {"person_id": person_id, "current_unit_id": str(unit), "planning_basis": "final_judgment"}


async def _move(client: httpx.AsyncClient, headers: dict[str, str], case_id: str, *statuses: str) -> None:
    url = f"/api/v1/cases/{case_id}"
    for status in statuses:
        etag = (await client.get(url, headers=headers)).headers["etag"]
        moved = await client.post(
            f"{url}/status", json={"status": status}, headers={**headers, "If-Match": etag}
        )
        assert moved.status_code == 200, moved.text


def test_every_status_a_case_can_leave_is_open() -> None:
    """The index's predicate (status is not closed) and the lifecycle agree: closed is the only end."""
    assert {status for status in CaseStatus if TRANSITIONS[status]} == OPEN
    assert frozenset(CaseStatus) - OPEN == {CaseStatus.CLOSED}


async def test_a_second_open_case_is_409_naming_the_open_one(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    first = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    person_id = first["person"]["id"]

    again = await case_client.post(
        "/api/v1/cases", json=_body(person_id, directory.unit_halden), headers=directory.coordinator_east
    )

    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"
    problem = again.json()
    assert problem["existing_id"] == first["id"]
    assert problem["title"] == "Person already has an open case"
    assert first["id"] in problem["detail"]
    assert "one open case at a time" in problem["detail"]
    async with sessionmaker() as session:
        cases = (
            await session.execute(select(func.count()).where(Case.person_id == uuid.UUID(person_id)))
        ).scalar()
        opened = (
            await session.execute(
                select(func.count()).where(
                    CaseOutbox.type == "case.opened.v1", CaseOutbox.subject == f"case/{first['id']}"
                )
            )
        ).scalar()
        learnt = (
            await session.execute(
                select(AccessLogEntry.what, AccessLogEntry.case_id, AccessLogEntry.actor_role).where(
                    AccessLogEntry.person_id == uuid.UUID(person_id), AccessLogEntry.what == "case.exists"
                )
            )
        ).all()
    assert (cases, opened) == (1, 1), "the refused open left no case and no event"
    assert [tuple(row) for row in learnt] == [("case.exists", uuid.UUID(first["id"]), "coordinator")], (
        "the access log says the caller learnt the open case exists"
    )


async def test_the_rule_holds_across_regions(case_client: httpx.AsyncClient, directory: Directory) -> None:
    """One person, one open case anywhere: a coordinator of another region is refused too."""
    first = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    south = directory.headers("coordinator", directory.region_south)
    again = await case_client.post(
        "/api/v1/cases", json=_body(first["person"]["id"], directory.unit_sem), headers=south
    )
    assert again.status_code == 409, again.text
    assert again.json()["existing_id"] == first["id"]


async def test_released_and_follow_up_cases_are_still_open(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    first = await open_case(case_client, headers, unit=directory.unit_oslo)
    body = _body(first["person"]["id"], directory.unit_oslo)
    for status in ("planning", "released", "follow_up"):
        await _move(case_client, headers, first["id"], status)
        again = await case_client.post("/api/v1/cases", json=body, headers=headers)
        assert again.status_code == 409, (status, again.text)


async def test_after_the_case_is_closed_the_person_may_get_a_new_one(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    first = await open_case(case_client, headers, unit=directory.unit_oslo)
    body = _body(first["person"]["id"], directory.unit_halden)
    await _move(case_client, headers, first["id"], "closed")

    second = await case_client.post("/api/v1/cases", json=body, headers=headers)
    assert second.status_code == 201, second.text
    third = await case_client.post("/api/v1/cases", json=body, headers=headers)
    assert third.status_code == 409, third.text
    assert third.json()["existing_id"] == second.json()["id"]


async def test_a_transfer_is_no_new_case(case_client: httpx.AsyncClient, directory: Directory) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    url = f"/api/v1/cases/{case['id']}"
    for unit in (directory.unit_halden, directory.unit_sem):  # the second leaves the region
        etag = (await case_client.get(url, headers=directory.admin)).headers["etag"]
        moved = await case_client.post(
            f"{url}/transfer", json={"to_unit_id": str(unit)}, headers={**directory.admin, "If-Match": etag}
        )
        assert moved.status_code == 200, moved.text
    assert moved.json()["current_unit_id"] == str(directory.unit_sem)
    again = await case_client.post(
        "/api/v1/cases", json=_body(case["person"]["id"], directory.unit_oslo), headers=headers
    )
    assert again.json()["existing_id"] == case["id"]


async def test_a_replayed_open_is_the_first_answer_not_a_conflict(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    from tests.case_api.conftest import register_person

    person = await register_person(case_client, directory.coordinator_east)
    headers = {**directory.coordinator_east, "Idempotency-Key": "open-once"}
    body = _body(person["id"], directory.unit_oslo)
    first = await case_client.post("/api/v1/cases", json=body, headers=headers)
    again = await case_client.post("/api/v1/cases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other_key = {**directory.coordinator_east, "Idempotency-Key": "open-twice"}
    assert (await case_client.post("/api/v1/cases", json=body, headers=other_key)).status_code == 409
