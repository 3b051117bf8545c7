from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from case_api.audit.models import TimelineEntry
from case_api.models import CaseOutbox
from tests.case_api.conftest import Directory, open_case

MUNICIPALITY_CHANGED = "case.municipality_changed.v1"


def url(case_id: str) -> str:
    return f"/api/v1/cases/{case_id}/municipality"


async def etag_of(client: httpx.AsyncClient, headers: dict[str, str], case_id: str) -> str:
    response = await client.get(f"/api/v1/cases/{case_id}", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.headers["etag"])


async def put(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    case_id: str,
    body: dict[str, Any],
    *,
    etag: str | None = None,
) -> httpx.Response:
    if etag is None:
        etag = await etag_of(client, headers, case_id)
    return await client.put(url(case_id), json=body, headers={**headers, "If-Match": etag})


async def events_of(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> list[CaseOutbox]:
    async with sessionmaker() as session:
        query = (
            select(CaseOutbox)
            .where(CaseOutbox.subject == f"case/{case_id}", CaseOutbox.type == MUNICIPALITY_CHANGED)
            .order_by(col(CaseOutbox.occurred_at))
        )
        return list((await session.execute(query)).scalars().all())


@pytest.fixture
async def case(case_client: httpx.AsyncClient, directory: Directory) -> dict[str, Any]:
    return await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)


async def test_the_list_has_every_current_municipality_and_its_date(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    response = await case_client.get(
        "/api/v1/municipalities", headers=directory.headers("service_market", directory.ngo)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["valid_from"] == "2024-01-01"
    assert len(body["items"]) == 357
    assert body["items"][0] == {"kommunenummer": "0301", "name": "Oslo", "county_code": "03"}


async def test_the_list_filters_by_name(case_client: httpx.AsyncClient, directory: Directory) -> None:
    response = await case_client.get(
        "/api/v1/municipalities", params={"q": "bergen"}, headers=directory.coordinator_east
    )
    assert [item["kommunenummer"] for item in response.json()["items"]] == ["4601"]
    none = await case_client.get(
        "/api/v1/municipalities", params={"q": "Atlantis"}, headers=directory.coordinator_east
    )
    assert none.json()["items"] == []


async def test_the_list_needs_a_token(case_client: httpx.AsyncClient) -> None:
    assert (await case_client.get("/api/v1/municipalities")).status_code == 401


async def test_confirming_a_municipality_updates_the_case_timeline_and_outbox(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    before = await etag_of(case_client, headers, case["id"])
    response = await put(
        case_client,
        headers,
        case["id"],
        {
            "registered_kommunenummer": "3101",
            "intended_kommunenummer": "0301",
            "responsible_kommunenummer": "0301",
            "status": "confirmed",
            "note": "Confirmed by letter",
        },
        etag=before,
    )
    assert response.status_code == 200, response.text
    assert response.json()["municipality"] == {
        "registered_kommunenummer": "3101",
        "intended_kommunenummer": "0301",
        "responsible_kommunenummer": "0301",
        "status": "confirmed",
        "note": "Confirmed by letter",
    }
    assert response.headers["etag"] != before
    assert response.headers["etag"] == await etag_of(case_client, headers, case["id"])
    assert response.json()["version"] == case["version"] + 1

    events = await events_of(sessionmaker, case["id"])
    assert len(events) == 1
    data = events[0].data
    assert (data["old_responsible_kommunenummer"], data["new_responsible_kommunenummer"]) == (None, "0301")
    assert (data["old_municipality_status"], data["new_municipality_status"]) == ("unresolved", "confirmed")
    assert data["responsible_kommunenummer"] == "0301"
    assert "Confirmed by letter" not in str(data)

    async with sessionmaker() as session:
        entries = (
            (
                await session.execute(
                    select(TimelineEntry).where(
                        TimelineEntry.case_id == case["id"],
                        TimelineEntry.action == "case.municipality_changed",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert len(entries) == 1
    assert entries[0].before == {
        "registered_kommunenummer": None,
        "intended_kommunenummer": None,
        "responsible_kommunenummer": None,
        "municipality_status": "unresolved",
        "municipality_note": None,
    }
    assert entries[0].after is not None
    assert entries[0].after["responsible_kommunenummer"] == "0301"
    assert entries[0].after["municipality_status"] == "confirmed"


@pytest.mark.parametrize(
    "field", ["registered_kommunenummer", "intended_kommunenummer", "responsible_kommunenummer"]
)
@pytest.mark.parametrize("number", ["0000", "1507", "5401"])
async def test_an_unknown_municipality_number_is_422_naming_the_field(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], field: str, number: str
) -> None:
    response = await put(
        case_client,
        directory.coordinator_east,
        case["id"],
        {"responsible_kommunenummer": "0301", "status": "proposed", field: number},
    )
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert response.json()["value"] == number


async def test_a_malformed_number_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    response = await put(
        case_client,
        directory.coordinator_east,
        case["id"],
        {"registered_kommunenummer": "301", "status": "unresolved"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.registered_kommunenummer"


@pytest.mark.parametrize("status", ["confirmed", "proposed"])
async def test_confirmed_or_proposed_without_a_responsible_municipality_is_422(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any], status: str
) -> None:
    response = await put(
        case_client,
        directory.coordinator_east,
        case["id"],
        {"intended_kommunenummer": "0301", "status": status},
    )
    assert response.status_code == 422
    assert response.json()["field"] == "responsible_kommunenummer"


async def test_kommunelos_with_a_responsible_municipality_is_422_and_without_is_accepted(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    rejected = await put(
        case_client, headers, case["id"], {"responsible_kommunenummer": "0301", "status": "kommunelos"}
    )
    assert rejected.status_code == 422
    assert rejected.json()["field"] == "responsible_kommunenummer"
    accepted = await put(
        case_client, headers, case["id"], {"registered_kommunenummer": "3101", "status": "kommunelos"}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["municipality"]["status"] == "kommunelos"
    assert accepted.json()["municipality"]["responsible_kommunenummer"] is None
    events = await events_of(sessionmaker, case["id"])
    assert [(e.data["old_municipality_status"], e.data["new_municipality_status"]) for e in events] == [
        ("unresolved", "kommunelos")
    ]


async def test_disputed_needs_a_note(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    body = {"responsible_kommunenummer": "0301", "status": "disputed"}
    without = await put(case_client, headers, case["id"], body)
    assert without.status_code == 422
    assert without.json()["field"] == "note"
    blank = await put(case_client, headers, case["id"], {**body, "note": "   "})
    assert blank.status_code == 422
    with_note = await put(case_client, headers, case["id"], {**body, "note": "Oslo says Halden"})
    assert with_note.status_code == 200, with_note.text
    assert with_note.json()["municipality"]["status"] == "disputed"


async def test_a_change_that_leaves_responsibility_alone_emits_no_event_but_is_recorded(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    proposed = {"responsible_kommunenummer": "3101", "status": "proposed"}
    first = await put(case_client, headers, case["id"], proposed)
    second = await put(
        case_client,
        headers,
        case["id"],
        {**proposed, "intended_kommunenummer": "0301"},
        etag=first.headers["etag"],
    )
    assert second.status_code == 200
    assert second.headers["etag"] != first.headers["etag"]
    assert second.json()["municipality"]["intended_kommunenummer"] == "0301"
    assert len(await events_of(sessionmaker, case["id"])) == 1
    async with sessionmaker() as session:
        actions = (
            (
                await session.execute(
                    select(TimelineEntry.after).where(
                        TimelineEntry.case_id == case["id"],
                        TimelineEntry.action == "case.municipality_changed",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert {"intended_kommunenummer": "0301"} in actions
    same = await put(
        case_client,
        headers,
        case["id"],
        {**proposed, "intended_kommunenummer": "0301"},
        etag=second.headers["etag"],
    )
    assert same.status_code == 200
    assert same.headers["etag"] == second.headers["etag"]


async def test_moving_responsibility_emits_old_and_new(
    case_client: httpx.AsyncClient,
    directory: Directory,
    case: dict[str, Any],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    headers = directory.coordinator_east
    await put(case_client, headers, case["id"], {"responsible_kommunenummer": "3101", "status": "proposed"})
    await put(case_client, headers, case["id"], {"responsible_kommunenummer": "0301", "status": "proposed"})
    events = await events_of(sessionmaker, case["id"])
    assert [
        (e.data["old_responsible_kommunenummer"], e.data["new_responsible_kommunenummer"]) for e in events
    ] == [(None, "3101"), ("3101", "0301")]
    assert (
        events[1].data["old_municipality_status"] == events[1].data["new_municipality_status"] == "proposed"
    )


async def test_a_stale_if_match_is_412_and_a_missing_one_428(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    stale = await etag_of(case_client, headers, case["id"])
    body = {"responsible_kommunenummer": "3101", "status": "proposed"}
    assert (await put(case_client, headers, case["id"], body, etag=stale)).status_code == 200
    again = await put(
        case_client, headers, case["id"], {**body, "responsible_kommunenummer": "0301"}, etag=stale
    )
    assert again.status_code == 412
    missing = await case_client.put(url(case["id"]), json=body, headers=headers)
    assert missing.status_code == 428
    read = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).json()
    assert read["municipality"]["responsible_kommunenummer"] == "3101"


async def test_a_closed_case_is_409(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    headers = directory.coordinator_east
    closed = await case_client.post(
        f"/api/v1/cases/{case['id']}/status",
        json={"status": "closed"},
        headers={**headers, "If-Match": await etag_of(case_client, headers, case["id"])},
    )
    assert closed.status_code == 200
    response = await put(case_client, headers, case["id"], {"status": "kommunelos"})
    assert response.status_code == 409


async def test_read_only_roles_may_not_change_and_others_do_not_see(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    etag = await etag_of(case_client, directory.coordinator_east, case["id"])
    body = {"status": "unresolved"}
    auditor = await put(case_client, directory.headers("auditor"), case["id"], body, etag=etag)
    assert auditor.status_code == 403
    south = directory.headers("coordinator", directory.region_south)
    assert (await put(case_client, south, case["id"], body, etag=etag)).status_code == 404


async def test_extra_fields_are_rejected(
    case_client: httpx.AsyncClient, directory: Directory, case: dict[str, Any]
) -> None:
    response = await put(
        case_client, directory.coordinator_east, case["id"], {"status": "unresolved", "bydel": "030101"}
    )
    assert response.status_code == 422
