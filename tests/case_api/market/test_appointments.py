"""Providers, sessions, bookings, the appointment states, check-in, referrals and scope."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import TimelineEntry
from case_api.domains.models import CaseDomain, DomainAction
from case_api.models import CaseOutbox
from tests.case_api.conftest import Directory, open_case
from tests.case_api.market.helpers import BASE, book, market_session, move, provider


async def test_a_provider_needs_a_known_organization(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    response = await case_client.post(
        f"{BASE}/providers",
        json={"organization_id": str(uuid.uuid4()), "name": "X", "kind": "other"},
        headers=directory.coordinator_east,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "organization_id"


async def test_a_weekly_series_creates_linked_occurrences(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    h = directory.coordinator_east
    nav = await provider(case_client, h, directory.nav_grunerlokka)
    start = datetime(2027, 3, 9, 9, 0, tzinfo=UTC)  # crosses the switch to summer time on 28 March
    response = await case_client.post(
        f"{BASE}/sessions",
        json={
            "unit_id": str(directory.unit_oslo),
            "provider_id": nav["id"],
            "format": "one_to_one",
            "location_type": "service_market_room",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=2)).isoformat(),
            "capacity": 4,
            "recurrence": "weekly",
            "repeat_until": "2027-04-06",
        },
        headers=h,
    )
    assert response.status_code == 201, response.text
    items = response.json()["items"]
    assert len(items) == 5
    assert {item["recurrence_group"] for item in items} == {response.json()["recurrence_group"]}
    # 10:00 local time every week: 09:00 UTC in winter, 08:00 UTC in summer.
    assert [item["starts_at"][11:16] for item in items] == ["09:00", "09:00", "09:00", "08:00", "08:00"]
    bad = await case_client.post(
        f"{BASE}/sessions",
        json={
            **{
                k: v
                for k, v in items[0].items()
                if k in ("unit_id", "provider_id", "format", "location_type")
            },
            "starts_at": start.isoformat(),
            "ends_at": start.isoformat(),
            "capacity": 1,
        },
        headers=h,
    )
    assert bad.status_code == 422


async def test_capacity_and_double_booking_are_refused(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    h = directory.coordinator_east
    nav = await provider(case_client, h, directory.nav_grunerlokka)
    first = await market_session(case_client, h, unit=directory.unit_oslo, provider_id=nav["id"], capacity=1)
    overlapping = await market_session(
        case_client,
        h,
        unit=directory.unit_oslo,
        provider_id=nav["id"],
        starts_at=datetime.fromisoformat(first["starts_at"]) + timedelta(hours=1),
    )
    a = await open_case(case_client, h, unit=directory.unit_oslo)
    b = await open_case(case_client, h, unit=directory.unit_oslo)
    assert (await book(case_client, h, first["id"], a["id"])).status_code == 201
    full = await book(case_client, h, first["id"], b["id"])
    assert full.status_code == 409
    assert full.json()["capacity"] == 1
    clash = await book(case_client, h, overlapping["id"], a["id"])
    assert clash.status_code == 409
    assert "overlapping" in clash.json()["detail"]
    elsewhere = await open_case(case_client, h, unit=directory.unit_halden)
    assert (await book(case_client, h, overlapping["id"], elsewhere["id"])).status_code == 409


async def test_the_appointment_walks_its_states_and_a_referral_becomes_an_action_and_an_event(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    h = directory.coordinator_east
    nav = await provider(case_client, h, directory.nav_grunerlokka)
    slot = await market_session(case_client, h, unit=directory.unit_oslo, provider_id=nav["id"])
    case = await open_case(case_client, h, unit=directory.unit_oslo)
    booked = await book(case_client, h, slot["id"], case["id"], escort_officers=2, needs_lift=True)
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert appointment["person_name"] == "Kari N."
    aid = appointment["id"]

    no_match = await case_client.post(f"{BASE}/appointments/{aid}/check-in", json={}, headers=h)
    assert no_match.status_code == 428
    illegal = await move(case_client, h, aid, "check-in", {})
    assert illegal.status_code == 409
    assert set(illegal.json()["allowed_next"]) >= {"escort_confirmed", "no_show", "rescheduled"}
    assert (await move(case_client, h, aid, "transitions", {"to": "escort_confirmed"})).status_code == 200
    checked = await move(case_client, h, aid, "check-in", {"minutes_late": 5})
    assert checked.status_code == 200, checked.text
    assert checked.json()["state"] == "checked_in"
    assert (await move(case_client, h, aid, "transitions", {"to": "no_show"})).status_code == 409
    done = await move(
        case_client,
        h,
        aid,
        "complete",
        {
            "outcome_code": "held",
            "domains_touched": ["work", "income"],
            "follow_up_needed": True,
            "referral_made": True,
            "referral_domain": "work",
            "referral_note": "NAV application for work assessment started",
        },
    )
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "completed"
    assert done.json()["allowed_next"] == []
    action_id = done.json()["checkin"]["referral_action_id"]
    assert (
        await move(case_client, h, aid, "transitions", {"to": "cancelled_by_prison", "cause": "lockdown"})
    ).status_code == 409

    async with sessionmaker() as session:
        action = await session.get(DomainAction, uuid.UUID(action_id))
        assert action is not None
        assert action.description == "NAV application for work assessment started"
        assert action.responsible_organization_id == directory.nav_grunerlokka
        domain = await session.get(CaseDomain, action.case_domain_id)
        assert domain is not None
        assert domain.domain.value == "work"
        events = (
            (
                await session.execute(
                    select(CaseOutbox).where(CaseOutbox.type == "case.market_referral_made.v1")
                )
            )
            .scalars()
            .all()
        )
        assert len(events) == 1
        data = events[0].data
        assert data["appointment_id"] == aid
        assert data["provider_organization_id"] == str(directory.nav_grunerlokka)
        assert data["domain"] == "work"
        assert data["case_id"] == case["id"]
        assert "status" in data
        timeline = (
            (
                await session.execute(
                    select(TimelineEntry.action).where(TimelineEntry.case_id == uuid.UUID(case["id"]))
                )
            )
            .scalars()
            .all()
        )
    assert {
        "market.appointment_booked",
        "market.appointment_escort_confirmed",
        "market.appointment_checked_in",
        "market.appointment_completed",
        "domain_action.created",
    } <= set(timeline)


async def test_rescheduling_books_the_new_session_in_the_same_call(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    h = directory.coordinator_east
    nav = await provider(case_client, h, directory.nav_grunerlokka)
    first = await market_session(case_client, h, unit=directory.unit_oslo, provider_id=nav["id"], capacity=1)
    later = await market_session(
        case_client,
        h,
        unit=directory.unit_oslo,
        provider_id=nav["id"],
        starts_at=datetime.fromisoformat(first["starts_at"]) + timedelta(days=7),
        capacity=1,
    )
    case = await open_case(case_client, h, unit=directory.unit_oslo)
    aid = (await book(case_client, h, first["id"], case["id"])).json()["id"]
    moved = await move(
        case_client, h, aid, "transitions", {"to": "rescheduled", "reschedule_to_session_id": later["id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["state"] == "rescheduled"
    new = (
        await case_client.get(f"{BASE}/appointments/{moved.json()['rescheduled_to_id']}", headers=h)
    ).json()
    assert (new["session_id"], new["state"]) == (later["id"], "scheduled")
    # The old place is free again.
    other = await open_case(case_client, h, unit=directory.unit_oslo)
    assert (await book(case_client, h, first["id"], other["id"])).status_code == 201


async def test_service_market_staff_see_names_and_times_but_no_domain_details(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    h = directory.coordinator_east
    staff = directory.headers("service_market", directory.unit_oslo)
    nav = await provider(case_client, h, directory.nav_grunerlokka)
    slot = await market_session(case_client, h, unit=directory.unit_oslo, provider_id=nav["id"])
    case = await open_case(case_client, h, unit=directory.unit_oslo)
    aid = (await book(case_client, staff, slot["id"], case["id"])).json()["id"]
    await move(case_client, staff, aid, "transitions", {"to": "escort_confirmed"})
    await move(case_client, staff, aid, "check-in", {})
    refused = await move(
        case_client, staff, aid, "complete", {"outcome_code": "held", "domains_touched": ["work"]}
    )
    assert refused.status_code == 403
    await move(
        case_client,
        h,
        aid,
        "complete",
        {
            "outcome_code": "held",
            "domains_touched": ["debt"],
            "referral_made": True,
            "referral_domain": "debt",
            "referral_note": "Debt advice",
        },
    )
    seen = (await case_client.get(f"{BASE}/appointments/{aid}", headers=staff)).json()
    assert seen["person_name"] == "Kari N."
    assert seen["checkin"]["domains_touched"] is None
    assert seen["checkin"]["referral_note"] is None
    assert "debt" not in str(seen).lower()
    assert "identity" not in str(seen)
    full = (await case_client.get(f"{BASE}/appointments/{aid}", headers=h)).json()
    assert full["checkin"]["domains_touched"] == ["debt"]
    # Another unit's service market staff and other roles.
    other = directory.headers("service_market", directory.unit_halden)
    assert (await case_client.get(f"{BASE}/appointments/{aid}", headers=other)).status_code == 404
    nav_headers = directory.headers("nav", directory.nav_grunerlokka)
    assert (await case_client.get(f"{BASE}/appointments/{aid}", headers=nav_headers)).status_code == 403


async def test_the_day_list_shows_who_goes_where_and_the_conflicts(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    h = directory.coordinator_east
    nav = await provider(case_client, h, directory.nav_grunerlokka)
    red_cross = await provider(case_client, h, directory.ngo, name="Røde Kors", kind="volunteer")
    start = datetime(2027, 2, 2, 9, 0, tzinfo=UTC)  # 10:00 in Oslo
    a = await market_session(
        case_client, h, unit=directory.unit_oslo, provider_id=nav["id"], starts_at=start, hours=1, capacity=5
    )
    b = await market_session(
        case_client,
        h,
        unit=directory.unit_oslo,
        provider_id=red_cross["id"],
        starts_at=start,
        hours=1,
        location_type="other",
    )
    cases = [await open_case(case_client, h, unit=directory.unit_oslo) for _ in range(3)]
    for case in cases[:2]:
        assert (await book(case_client, h, a["id"], case["id"], escort_officers=2)).status_code == 201
    assert (await book(case_client, h, b["id"], cases[2]["id"], escort_officers=1)).status_code == 201
    put = await case_client.put(
        f"{BASE}/units/{directory.unit_oslo}/capacity", json={"escorts_available": 4}, headers=h
    )
    assert put.status_code == 200, put.text
    response = await case_client.get(
        f"{BASE}/day-list", params={"unit_id": str(directory.unit_oslo), "date": "2027-02-02"}, headers=h
    )
    assert response.status_code == 200, response.text
    day = response.json()
    assert day["escorts_available"] == 4
    assert len(day["entries"]) == 3
    entry = day["entries"][0]
    assert entry["person_name"] == "Kari N."
    assert {e["provider_name"] for e in day["entries"]} == {"NAV servicetorg", "Røde Kors"}
    assert [(h_["hour"][11:16], h_["escorts_needed"]) for h_ in day["hours"]] == [("10:00", 5)]
    kinds = [c["kind"] for c in day["conflicts"]]
    assert kinds == ["hour_over_escort_capacity"]
    relaxed = await case_client.get(
        f"{BASE}/day-list",
        params={"unit_id": str(directory.unit_oslo), "date": "2027-02-02", "escorts_available": 6},
        headers=h,
    )
    assert relaxed.json()["conflicts"] == []
    assert "domain" not in str(relaxed.json()["entries"])
    out = await case_client.get(
        f"{BASE}/day-list",
        params={"unit_id": str(directory.unit_oslo), "date": "2027-02-02"},
        headers=directory.headers("prison_staff", directory.unit_sem),
    )
    assert out.status_code == 404


def test_the_referral_event_is_documented() -> None:
    import yaml

    from shared.contracts.events import CaseFacts
    from shared.settings import REPO_ROOT

    spec = yaml.safe_load((REPO_ROOT / "docs" / "asyncapi.yaml").read_text())
    message = spec["components"]["messages"]["caseMarketReferralMade"]
    assert message["name"] == "case.market_referral_made.v1"
    data = message["payload"]["allOf"][1]["properties"]["data"]
    referral = {"appointment_id", "provider_organization_id", "domain", "domain_action_id"}
    assert referral <= set(data["required"])
    assert set(data["properties"]) == set(CaseFacts.model_fields) | referral
