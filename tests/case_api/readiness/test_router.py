from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import AccessLogEntry
from case_api.domains.models import CaseDomain, Domain, DomainStatus
from case_api.domains.service import local_today
from case_api.group.models import GroupMember, GroupRole
from case_api.readiness import service as readiness
from case_api.release_dates.models import (
    ReleaseDate,
    ReleaseDateCertainty,
    ReleaseDateKind,
    ReleaseDateSource,
)
from shared.db import unit_of_work, utcnow
from tests.case_api.conftest import Directory, open_case
from tests.case_api.domains.helpers import give_consent, patch_domain, set_case

ALL_DOMAINS = [domain.value for domain in Domain]


async def _add_contact(
    sessionmaker: async_sessionmaker[AsyncSession],
    case_id: str,
    *,
    member_from: date,
    member_until: date | None = None,
    post_release_contact: bool = True,
) -> None:
    async with unit_of_work(sessionmaker) as session:
        session.add(
            GroupMember(
                case_id=uuid.UUID(case_id),
                person_name="Kontakt Person",
                role=GroupRole.MUNICIPALITY_SOCIAL_SERVICES,
                member_from=member_from,
                member_until=member_until,
                post_release_contact=post_release_contact,
                added_by="test",
            )
        )


async def _confirm_release(
    sessionmaker: async_sessionmaker[AsyncSession], case_id: str, day: date, *, superseded: bool = False
) -> None:
    async with unit_of_work(sessionmaker) as session:
        session.add(
            ReleaseDate(
                case_id=uuid.UUID(case_id),
                kind=ReleaseDateKind.CONFIRMED,
                date=day,
                certainty=ReleaseDateCertainty.CERTAIN,
                source=ReleaseDateSource.COURT,
                recorded_by="test",
                superseded_at=utcnow() if superseded else None,
            )
        )
    await set_case(sessionmaker, case_id, effective_release_date=day)


async def _settle_every_domain(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> None:
    async with unit_of_work(sessionmaker) as session:
        await session.execute(
            update(CaseDomain)
            .where(CaseDomain.case_id == uuid.UUID(case_id))
            .values(status=DomainStatus.NOT_NEEDED)
        )


async def _readiness(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, **params: object
) -> dict[str, Any]:
    response = await client.get(f"/api/v1/cases/{case_id}/readiness", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_new_case_reports_every_gap(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    await set_case(sessionmaker, case["id"], effective_release_date=local_today() + timedelta(days=10))
    report = await _readiness(case_client, headers, case["id"])
    assert report["ready"] is False
    assert report["gaps"] == [
        "domains_not_settled",
        "no_confirmed_release_date",
        "responsible_municipality_unresolved",
        "no_post_release_contact",
    ]
    assert report["unsettled_domains"] == [{"domain": d, "status": "not_assessed"} for d in ALL_DOMAINS]
    assert report["withheld_domains"] == []
    assert (report["days_until_release"], report["in_window"]) == (10, True)
    assert (await _readiness(case_client, headers, case["id"], days=5))["in_window"] is False
    async with sessionmaker() as session:
        whats = (
            (await session.execute(select(AccessLogEntry.what).where(AccessLogEntry.case_id == case["id"])))
            .scalars()
            .all()
        )
    assert whats == ["readiness", "readiness"]


async def test_hostel_only_housing_and_a_municipality_without_consent_are_gaps(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    await set_case(sessionmaker, case["id"], responsible_kommunenummer="0301")
    response = await patch_domain(
        case_client, headers, case["id"], "housing", status="arranged", hostel_only=True
    )
    assert response.status_code == 200
    # A consent for another organization does not count for the municipality.
    await give_consent(sessionmaker, case["id"], organization_id=directory.nav_grunerlokka, domains=["work"])
    report = await _readiness(case_client, headers, case["id"])
    assert report["gaps"] == [
        "domains_not_settled",
        "housing_hostel_only",
        "no_confirmed_release_date",
        "no_consent_for_responsible_municipality",
        "no_post_release_contact",
    ]
    assert [item["domain"] for item in report["unsettled_domains"]] == [
        d for d in ALL_DOMAINS if d != "housing"
    ]
    assert report["days_until_release"] is None


async def test_a_municipality_missing_from_the_directory_is_unresolved(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await set_case(sessionmaker, case["id"], responsible_kommunenummer="1234")
    report = await _readiness(case_client, directory.coordinator_east, case["id"])
    assert "responsible_municipality_unresolved" in report["gaps"]
    assert "no_consent_for_responsible_municipality" not in report["gaps"]


async def test_a_settled_case_with_consent_confirmed_date_and_contact_is_ready(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    release = local_today() + timedelta(days=14)
    await set_case(sessionmaker, case["id"], responsible_kommunenummer="0301")
    await _settle_every_domain(sessionmaker, case["id"])
    await give_consent(sessionmaker, case["id"], organization_id=directory.oslo, domains=["housing"])
    await _confirm_release(sessionmaker, case["id"], release)
    await _add_contact(sessionmaker, case["id"], member_from=local_today())
    report = await _readiness(case_client, headers, case["id"])
    assert (report["ready"], report["gaps"], report["unsettled_domains"]) == (True, [], [])
    async with sessionmaker() as session:
        assert await readiness.has_confirmed_release_date(session, uuid.UUID(case["id"])) is True


async def test_a_superseded_confirmed_date_and_an_ended_or_unmarked_contact_do_not_count(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    release = local_today() + timedelta(days=14)
    await _confirm_release(sessionmaker, case["id"], release, superseded=True)
    # Leaves before the release day; the other one is in the group but not the contact after release.
    await _add_contact(
        sessionmaker, case["id"], member_from=local_today(), member_until=release - timedelta(days=1)
    )
    await _add_contact(sessionmaker, case["id"], member_from=local_today(), post_release_contact=False)
    report = await _readiness(case_client, headers, case["id"])
    assert "no_confirmed_release_date" in report["gaps"]
    assert "no_post_release_contact" in report["gaps"]


async def test_a_municipality_is_told_nothing_about_domains_its_consent_does_not_cover(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await set_case(sessionmaker, case["id"], responsible_kommunenummer="0301")
    await give_consent(sessionmaker, case["id"], organization_id=directory.oslo, domains=["housing", "work"])
    report = await _readiness(case_client, directory.headers("municipality", directory.oslo), case["id"])
    assert [item["domain"] for item in report["unsettled_domains"]] == ["housing", "work"]
    assert report["withheld_domains"] == [d for d in ALL_DOMAINS if d not in ("housing", "work")]
    assert "no_consent_for_responsible_municipality" not in report["gaps"]
    assert report["ready"] is False


async def test_the_report_lists_only_cases_inside_the_window_soonest_first(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    today = local_today()
    dates = {
        "soon": today + timedelta(days=5),
        "today": today,
        "late": today + timedelta(days=60),
        "overdue": today - timedelta(days=3),
        "released": today - timedelta(days=3),
        "closed": today + timedelta(days=2),
        "undated": None,
    }
    ids = {}
    for name, day in dates.items():
        case = await open_case(case_client, headers, unit=directory.unit_oslo)
        ids[name] = case["id"]
        await set_case(sessionmaker, case["id"], effective_release_date=day)
    await set_case(sessionmaker, ids["released"], status="released")
    await set_case(sessionmaker, ids["closed"], status="closed")
    other_unit = await open_case(case_client, headers, unit=directory.unit_halden)
    await set_case(sessionmaker, other_unit["id"], effective_release_date=today + timedelta(days=1))

    url = f"/api/v1/readiness?unit_id={directory.unit_oslo}"
    response = await case_client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["case_id"] for item in items] == [ids["overdue"], ids["today"], ids["soon"]]
    assert [item["days_until_release"] for item in items] == [-3, 0, 5]
    assert all(item["in_window"] for item in items)
    assert items[0]["person"]["family_name"] == "Nordmann"
    async with sessionmaker() as session:
        logged = (
            (await session.execute(select(AccessLogEntry.case_id).where(AccessLogEntry.what == "readiness")))
            .scalars()
            .all()
        )
    assert sorted(str(case_id) for case_id in logged) == sorted([ids["overdue"], ids["today"], ids["soon"]])

    wide = await case_client.get(f"{url}&days=90", headers=headers)
    assert [item["case_id"] for item in wide.json()["items"]][-1] == ids["late"]

    first = (await case_client.get(f"{url}&limit=2", headers=headers)).json()
    rest = (await case_client.get(f"{url}&limit=2&cursor={first['next_cursor']}", headers=headers)).json()
    assert [item["case_id"] for item in first["items"] + rest["items"]] == [
        ids["overdue"],
        ids["today"],
        ids["soon"],
    ]
    assert rest["next_cursor"] is None


async def test_the_report_shows_a_municipality_only_its_consented_cases(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    soon = local_today() + timedelta(days=3)
    shared_case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    silent_case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    for case in (shared_case, silent_case):
        await set_case(
            sessionmaker, case["id"], responsible_kommunenummer="0301", effective_release_date=soon
        )
    await give_consent(sessionmaker, shared_case["id"], organization_id=directory.oslo, domains=["housing"])
    response = await case_client.get(
        "/api/v1/readiness?kommunenummer=0301", headers=directory.headers("municipality", directory.oslo)
    )
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["case_id"] for item in items] == [shared_case["id"]]
    assert [d["domain"] for d in items[0]["unsettled_domains"]] == ["housing"]


async def test_days_outside_0_to_365_and_a_bad_cursor_are_rejected(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    assert (await case_client.get("/api/v1/readiness?days=366", headers=headers)).status_code == 422
    assert (await case_client.get("/api/v1/readiness?days=-1", headers=headers)).status_code == 422
    assert (await case_client.get("/api/v1/readiness?cursor=bm9wZQ", headers=headers)).status_code == 400


async def test_a_role_without_case_access_is_403(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    response = await case_client.get(
        "/api/v1/readiness", headers=directory.headers("service_market", directory.ngo)
    )
    assert response.status_code == 403
