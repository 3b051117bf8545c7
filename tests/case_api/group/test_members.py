from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import AccessLogEntry, TimelineEntry
from case_api.group.service import local_today
from case_api.models import CaseOutbox
from tests.case_api.conftest import Directory, open_case


async def add_member(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/api/v1/cases/{case_id}/group/members", json=body, headers=headers)


async def timeline(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> list[TimelineEntry]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(TimelineEntry)
            .where(TimelineEntry.case_id == uuid.UUID(case_id), TimelineEntry.entity == "group_member")
            .order_by(TimelineEntry.at)
        )
        return list(rows.scalars())


async def group_events(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> list[CaseOutbox]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(CaseOutbox).where(
                CaseOutbox.subject == f"case/{case_id}", CaseOutbox.type == "case.group_changed.v1"
            )
        )
        return list(rows.scalars())


async def test_the_first_inmate_member_chairs_the_group_automatically(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    inmate = await add_member(case_client, headers, case["id"], person_name="Kari Nordmann", role="inmate")
    assert inmate.status_code == 201, inmate.text
    assert inmate.json()["is_chair"] is True
    assert inmate.json()["member_from"] == local_today().isoformat()
    assert inmate.headers["etag"] == inmate.json()["etag"]
    group = (await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=headers)).json()
    assert group["chair_member_id"] == inmate.json()["id"]
    entries = await timeline(sessionmaker, case["id"])
    assert [(e.action, e.entity_id, e.after["role"]) for e in entries if e.after] == [
        ("group.member_added", inmate.json()["id"], "inmate")
    ]


async def test_a_second_active_inmate_member_is_422(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    first = await add_member(case_client, headers, case["id"], person_name="Kari Nordmann", role="inmate")
    second = await add_member(case_client, headers, case["id"], person_name="Kari N.", role="inmate")
    assert second.status_code == 422
    assert second.json()["field"] == "role"
    assert second.json()["existing_member_id"] == first.json()["id"]


async def test_an_inmate_member_may_follow_one_whose_membership_ended(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    yesterday = local_today() - timedelta(days=1)
    first = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Kari Nordmann",
        role="inmate",
        member_from=(yesterday - timedelta(days=30)).isoformat(),
        member_until=yesterday.isoformat(),
    )
    assert first.json()["active"] is False
    second = await add_member(case_client, headers, case["id"], person_name="Kari Nordmann", role="inmate")
    assert second.status_code == 201, second.text
    assert second.json()["is_chair"] is True


async def test_only_an_inmate_member_may_chair(case_client: httpx.AsyncClient, directory: Directory) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    on_create = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Per Hansen",
        role="nav",
        organization_id=str(directory.nav_grunerlokka),
        is_chair=True,
    )
    assert on_create.status_code == 422
    assert on_create.json()["field"] == "is_chair"
    nav = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Per Hansen",
        role="nav",
        organization_id=str(directory.nav_grunerlokka),
    )
    assert nav.json()["is_chair"] is False
    on_change = await case_client.patch(
        f"/api/v1/cases/{case['id']}/group/members/{nav.json()['id']}",
        json={"is_chair": True},
        headers={**headers, "If-Match": nav.headers["etag"]},
    )
    assert on_change.status_code == 422
    assert on_change.json()["field"] == "is_chair"


async def test_ending_a_membership_keeps_the_member_as_past(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    today = local_today()
    nav = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Per Hansen",
        role="nav",
        organization_id=str(directory.nav_grunerlokka),
        member_from=(today - timedelta(days=60)).isoformat(),
    )
    ended = await case_client.patch(
        f"/api/v1/cases/{case['id']}/group/members/{nav.json()['id']}",
        json={"member_until": (today - timedelta(days=1)).isoformat()},
        headers={**headers, "If-Match": nav.headers["etag"]},
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["active"] is False
    assert ended.headers["etag"] != nav.headers["etag"]
    group = (await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=headers)).json()
    assert [(m["id"], m["active"]) for m in group["members"]] == [(nav.json()["id"], False)]
    entries = await timeline(sessionmaker, case["id"])
    assert [e.action for e in entries] == ["group.member_added", "group.member_ended"]
    assert entries[-1].before == {"member_until": None}


async def test_member_until_before_member_from_is_422(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    response = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Per Hansen",
        role="other",
        member_from="2027-02-01",
        member_until="2027-01-31",
    )
    assert response.status_code == 422
    assert response.json()["field"] == "member_until"


async def test_a_stale_member_etag_is_412_and_changes_nothing(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    member = await add_member(
        case_client, headers, case["id"], person_name="Ola Hansen", role="contact_officer"
    )
    url = f"/api/v1/cases/{case['id']}/group/members/{member.json()['id']}"
    stale = member.headers["etag"]
    first = await case_client.patch(
        url, json={"contact_phone": "+47 900 00 000"}, headers={**headers, "If-Match": stale}
    )
    assert first.status_code == 200
    second = await case_client.patch(
        url, json={"contact_phone": "+47 911 11 111"}, headers={**headers, "If-Match": stale}
    )
    assert second.status_code == 412
    missing = await case_client.patch(url, json={"contact_phone": "+47 922 22 222"}, headers=headers)
    assert missing.status_code == 428
    after = (await case_client.get(url, headers=headers)).json()
    assert after["contact_phone"] == "+47 900 00 000"


async def test_an_unknown_organization_is_422_naming_the_field(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    response = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Per Hansen",
        role="nav",
        organization_id=str(uuid.uuid4()),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "organization_id"
    group = (await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=headers)).json()
    assert group["members"] == []


async def test_a_post_release_contact_emits_group_changed_without_names(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    await add_member(case_client, headers, case["id"], person_name="Kari Nordmann", role="inmate")
    assert await group_events(sessionmaker, case["id"]) == []
    contact = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Siri Bakken",
        role="municipality_social_services",
        organization_id=str(directory.oslo),
        post_release_contact=True,
        contact_phone="+47 23 00 00 00",
        contact_email="siri.bakken@oslo.kommune.no",
    )
    assert contact.status_code == 201, contact.text
    events = await group_events(sessionmaker, case["id"])
    assert len(events) == 1
    data = events[0].data
    assert data["member_id"] == contact.json()["id"]
    assert data["role"] == "municipality_social_services"
    assert data["organization_id"] == str(directory.oslo)
    assert data["post_release_contact"] is True
    assert data["active"] is True
    assert "Bakken" not in str(data)
    assert "23 00 00 00" not in str(data)
    assert "Nordmann" not in str(data)


async def test_ending_a_post_release_contact_emits_an_inactive_group_change(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    today = local_today()
    contact = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Siri Bakken",
        role="nav",
        organization_id=str(directory.nav_grunerlokka),
        member_from=(today - timedelta(days=10)).isoformat(),
        post_release_contact=True,
    )
    await case_client.patch(
        f"/api/v1/cases/{case['id']}/group/members/{contact.json()['id']}",
        json={"member_until": (today - timedelta(days=1)).isoformat()},
        headers={**headers, "If-Match": contact.headers["etag"]},
    )
    events = await group_events(sessionmaker, case["id"])
    assert [(e.data["change"], e.data["active"]) for e in events] == [("added", True), ("ended", False)]


async def test_adding_a_member_with_the_same_idempotency_key_replays(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = {**directory.coordinator_east, "Idempotency-Key": "member-1"}
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    body = {"person_name": "Kari Nordmann", "role": "inmate"}
    first = await add_member(case_client, headers, case["id"], **body)
    again = await add_member(case_client, headers, case["id"], **body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    group = (
        await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=directory.coordinator_east)
    ).json()
    assert len(group["members"]) == 1


async def test_a_read_only_role_cannot_add_a_member(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    response = await add_member(
        case_client,
        directory.headers("municipality", directory.oslo),
        case["id"],
        person_name="Siri Bakken",
        role="municipality_social_services",
    )
    assert response.status_code == 403


async def test_a_coordinator_of_another_region_does_not_see_the_group(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    south = directory.headers("coordinator", directory.region_south)
    read = await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=south)
    write = await add_member(case_client, south, case["id"], person_name="Kari Nordmann", role="inmate")
    assert read.status_code == 404
    assert write.status_code == 404


async def test_reading_the_group_is_written_to_the_access_log(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=directory.coordinator_east)
    async with sessionmaker() as session:
        entries = (
            (await session.execute(select(AccessLogEntry).where(AccessLogEntry.case_id == case["id"])))
            .scalars()
            .all()
        )
    assert [(e.what, e.person_id) for e in entries] == [("group", uuid.UUID(case["person"]["id"]))]


async def test_a_closed_case_group_cannot_change(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    etag = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers["etag"]
    closed = await case_client.post(
        f"/api/v1/cases/{case['id']}/status", json={"status": "closed"}, headers={**headers, "If-Match": etag}
    )
    assert closed.status_code == 200
    response = await add_member(case_client, headers, case["id"], person_name="Kari Nordmann", role="inmate")
    assert response.status_code == 409
