from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import TimelineEntry
from case_api.cases.models import Case
from case_api.consents.models import Consent, ConsentBasis, ConsentDomain, ConsentRecipient
from shared.db import unit_of_work
from tests.case_api.conftest import Directory, open_case
from tests.case_api.group.test_members import add_member


def hours_from_now(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def group_with(
    client: httpx.AsyncClient, headers: dict[str, str], directory: Directory
) -> tuple[dict[str, Any], dict[str, str]]:
    """A case with an inmate, a NAV and a municipality member: (case, {role: member id})."""
    case = await open_case(client, headers, unit=directory.unit_oslo)
    members = {}
    for role, name, org in [
        ("inmate", "Kari Nordmann", None),
        ("nav", "Per Hansen", directory.nav_grunerlokka),
        ("municipality_social_services", "Siri Bakken", directory.oslo),
    ]:
        body: dict[str, Any] = {"person_name": name, "role": role}
        if org:
            body["organization_id"] = str(org)
        response = await add_member(client, headers, case["id"], **body)
        assert response.status_code == 201, response.text
        members[role] = response.json()["id"]
    return case, members


async def call_meeting(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, **body: Any
) -> httpx.Response:
    body = {"starts_at": hours_from_now(-2), "duration_minutes": 60, "place": "Oslo fengsel", **body}
    return await client.post(f"/api/v1/cases/{case_id}/meetings", json=body, headers=headers)


async def test_calling_a_meeting_invites_members_and_writes_the_timeline(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    response = await call_meeting(
        case_client,
        headers,
        case["id"],
        starts_at=hours_from_now(24 * 30),
        place=None,
        video_link="https://video.example.no/room/1",
        invited_member_ids=[members["inmate"], members["nav"], members["inmate"]],
    )
    assert response.status_code == 201, response.text
    meeting = response.json()
    assert meeting["place"] is None
    assert [(p["member_id"], p["invited"], p["attended"]) for p in meeting["participants"]] == [
        (members["inmate"], True, None),
        (members["nav"], True, None),
    ]
    assert meeting["attendance_recorded"] is False
    assert meeting["absent_without_apologies"] == []
    assert response.headers["etag"] == meeting["etag"]
    async with sessionmaker() as session:
        entry = (
            await session.execute(select(TimelineEntry).where(TimelineEntry.entity_id == meeting["id"]))
        ).scalar_one()
    assert entry.action == "meeting.called"
    assert entry.after is not None
    assert entry.after["invited_member_ids"] == [members["inmate"], members["nav"]]


async def test_inviting_someone_outside_the_group_is_422_naming_the_member(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    other_case, other_members = await group_with(case_client, headers, directory)
    response = await call_meeting(
        case_client, headers, case["id"], invited_member_ids=[members["inmate"], other_members["nav"]]
    )
    assert response.status_code == 422
    assert response.json()["member_id"] == other_members["nav"]
    assert response.json()["field"] == "invited_member_ids"
    listed = await case_client.get(f"/api/v1/cases/{case['id']}/meetings", headers=headers)
    assert listed.json()["items"] == []
    assert other_case["id"] != case["id"]


async def test_a_meeting_needs_a_place_or_an_https_video_link(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    nowhere = await call_meeting(case_client, headers, case["id"], place=None)
    plain_http = await call_meeting(
        case_client, headers, case["id"], place=None, video_link="http://video.example.no/room/1"
    )
    naive = await call_meeting(case_client, headers, case["id"], starts_at="2027-01-14T10:00:00")
    assert nowhere.status_code == plain_http.status_code == naive.status_code == 422
    assert any(error["field"] == "body.video_link" for error in plain_http.json()["errors"])
    assert any(error["field"] == "body.starts_at" for error in naive.json()["errors"])


async def test_attended_together_with_apologies_is_422(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    meeting = (
        await call_meeting(case_client, headers, case["id"], invited_member_ids=[members["nav"]])
    ).json()
    response = await case_client.put(
        f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}/attendance",
        json={"attendance": [{"member_id": members["nav"], "attended": True, "apologies": True}]},
        headers={**headers, "If-Match": meeting["etag"]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].startswith("body.attendance.0")


async def test_absent_without_apologies_lists_members_who_neither_came_nor_sent_apologies(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    meeting = (
        await call_meeting(
            case_client,
            headers,
            case["id"],
            invited_member_ids=[members["inmate"], members["nav"], members["municipality_social_services"]],
        )
    ).json()
    url = f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}"
    response = await case_client.put(
        f"{url}/attendance",
        json={
            "attendance": [
                {"member_id": members["inmate"], "attended": True},
                {"member_id": members["nav"], "attended": False, "apologies": True, "note": "Sick"},
            ]
        },
        headers={**headers, "If-Match": meeting["etag"]},
    )
    assert response.status_code == 200, response.text
    recorded = response.json()
    assert recorded["attendance_recorded"] is True
    assert recorded["absent_without_apologies"] == [members["municipality_social_services"]]
    assert response.headers["etag"] != meeting["etag"]
    read = (await case_client.get(url, headers=headers)).json()
    assert read["absent_without_apologies"] == [members["municipality_social_services"]]
    nav = next(p for p in read["participants"] if p["member_id"] == members["nav"])
    assert (nav["attended"], nav["apologies"], nav["note"]) == (False, True, "Sick")
    async with sessionmaker() as session:
        actions = (
            (
                await session.execute(
                    select(TimelineEntry.action).where(TimelineEntry.entity_id == meeting["id"])
                )
            )
            .scalars()
            .all()
        )
    assert sorted(actions) == ["meeting.attendance_recorded", "meeting.called"]


async def test_recording_attendance_needs_the_current_meeting_etag(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    meeting = (
        await call_meeting(case_client, headers, case["id"], invited_member_ids=[members["nav"]])
    ).json()
    url = f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}/attendance"
    present = {"attendance": [{"member_id": members["nav"], "attended": True}]}
    absent = {"attendance": [{"member_id": members["nav"], "attended": False}]}
    first = await case_client.put(url, json=present, headers={**headers, "If-Match": meeting["etag"]})
    second = await case_client.put(url, json=absent, headers={**headers, "If-Match": meeting["etag"]})
    assert first.status_code == 200
    assert second.status_code == 412
    read = (
        await case_client.get(f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}", headers=headers)
    ).json()
    assert read["participants"][0]["attended"] is True


async def test_before_a_meeting_only_apologies_can_be_recorded(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    meeting = (
        await call_meeting(
            case_client,
            headers,
            case["id"],
            starts_at=hours_from_now(48),
            invited_member_ids=[members["nav"]],
        )
    ).json()
    url = f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}/attendance"
    attended = await case_client.put(
        url,
        json={"attendance": [{"member_id": members["nav"], "attended": True}]},
        headers={**headers, "If-Match": meeting["etag"]},
    )
    apologies = await case_client.put(
        url,
        json={"attendance": [{"member_id": members["nav"], "apologies": True}]},
        headers={**headers, "If-Match": meeting["etag"]},
    )
    assert attended.status_code == 409
    assert apologies.status_code == 200, apologies.text
    assert apologies.json()["participants"][0]["apologies"] is True
    assert apologies.json()["attendance_recorded"] is False


async def test_decisions_are_listed_per_domain(case_client: httpx.AsyncClient, directory: Directory) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    meeting = (await call_meeting(case_client, headers, case["id"])).json()
    url = f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}"
    for domain, text, responsible in [
        ("work", "NAV meets the inmate before release", members["nav"]),
        ("housing", "The municipality offers a flat", members["municipality_social_services"]),
        ("housing", "Apply for housing allowance", None),
    ]:
        body = {"domain": domain, "decision": text, "responsible_member_id": responsible}
        response = await case_client.post(f"{url}/decisions", json=body, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["domain"] == domain
    read = (await case_client.get(url, headers=headers)).json()
    assert [(d["domain"], d["decision"]) for d in read["decisions"]] == [
        ("housing", "The municipality offers a flat"),
        ("housing", "Apply for housing allowance"),
        ("work", "NAV meets the inmate before release"),
    ]
    listed = (await case_client.get(f"/api/v1/cases/{case['id']}/meetings", headers=headers)).json()
    assert [d["domain"] for d in listed["items"][0]["decisions"]] == ["housing", "housing", "work"]


async def test_a_decision_for_someone_outside_the_group_is_422(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case, _ = await group_with(case_client, headers, directory)
    meeting = (await call_meeting(case_client, headers, case["id"])).json()
    response = await case_client.post(
        f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}/decisions",
        json={"domain": "debt", "decision": "Debt advice", "responsible_member_id": str(uuid.uuid4())},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "responsible_member_id"


async def test_meetings_are_listed_latest_first_a_page_at_a_time(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    ids = [
        (await call_meeting(case_client, headers, case["id"], starts_at=hours_from_now(offset))).json()["id"]
        for offset in (-48, 24, -24)
    ]
    url = f"/api/v1/cases/{case['id']}/meetings?limit=2"
    first = (await case_client.get(url, headers=headers)).json()
    rest = (await case_client.get(f"{url}&cursor={first['next_cursor']}", headers=headers)).json()
    assert [m["id"] for m in first["items"] + rest["items"]] == [ids[1], ids[2], ids[0]]
    assert rest["next_cursor"] is None


async def test_a_read_only_role_cannot_call_a_meeting(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    response = await call_meeting(case_client, directory.headers("municipality", directory.oslo), case["id"])
    assert response.status_code == 403


async def test_a_coordinator_of_another_region_does_not_see_the_meetings(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    meeting = (await call_meeting(case_client, directory.coordinator_east, case["id"])).json()
    south = directory.headers("coordinator", directory.region_south)
    listed = await case_client.get(f"/api/v1/cases/{case['id']}/meetings", headers=south)
    one = await case_client.get(f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}", headers=south)
    assert listed.status_code == one.status_code == 404


async def test_a_municipality_sees_only_the_domains_and_members_its_consent_covers(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case, members = await group_with(case_client, headers, directory)
    treatment = await add_member(
        case_client,
        headers,
        case["id"],
        person_name="Lise Dahl",
        role="treatment",
        organization_id=str(directory.health_trust),
    )
    meeting = (
        await call_meeting(
            case_client, headers, case["id"], invited_member_ids=[members["nav"], treatment.json()["id"]]
        )
    ).json()
    for domain in ("housing", "substance_treatment"):
        await case_client.post(
            f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}/decisions",
            json={"domain": domain, "decision": f"Decision on {domain}"},
            headers=headers,
        )
    async with unit_of_work(sessionmaker) as session:
        row = await session.get(Case, uuid.UUID(case["id"]))
        assert row is not None
        row.responsible_kommunenummer = "0301"
        consent = Consent(
            case_id=row.id,
            basis=ConsentBasis.CONSENT,
            given_at=datetime.now(UTC) - timedelta(days=1),
            recorded_by="test",
        )
        session.add(consent)
        await session.flush()
        session.add(ConsentRecipient(consent_id=consent.id, organization_id=directory.oslo))
        session.add(ConsentDomain(consent_id=consent.id, domain="housing"))
    municipality = directory.headers("municipality", directory.oslo)
    group = (await case_client.get(f"/api/v1/cases/{case['id']}/group", headers=municipality)).json()
    read = (
        await case_client.get(f"/api/v1/cases/{case['id']}/meetings/{meeting['id']}", headers=municipality)
    ).json()
    hidden = await case_client.get(
        f"/api/v1/cases/{case['id']}/group/members/{treatment.json()['id']}", headers=municipality
    )
    assert treatment.json()["id"] not in [m["id"] for m in group["members"]]
    assert len(group["members"]) == 3
    assert [d["domain"] for d in read["decisions"]] == ["housing"]
    assert [p["member_id"] for p in read["participants"]] == [members["nav"]]
    assert hidden.status_code == 404
