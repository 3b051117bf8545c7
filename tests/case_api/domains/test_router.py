from __future__ import annotations

import uuid
from datetime import date, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import AccessLogEntry, TimelineEntry
from case_api.domains.models import Domain
from tests.case_api.conftest import Directory, open_case
from tests.case_api.domains.helpers import domain_etag, give_consent, patch_domain, set_case


async def _timeline(sessionmaker: async_sessionmaker[AsyncSession], case_id: str) -> list[TimelineEntry]:
    async with sessionmaker() as session:
        query = (
            select(TimelineEntry)
            .where(TimelineEntry.case_id == uuid.UUID(case_id))
            .order_by(TimelineEntry.at, TimelineEntry.id)
        )
        return list((await session.execute(query)).scalars().all())


async def test_a_new_case_lists_every_domain_not_assessed_with_its_own_etag_and_logs_the_read(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    response = await case_client.get(
        f"/api/v1/cases/{case['id']}/domains", headers=directory.coordinator_east
    )
    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["domain"] for item in items] == [domain.value for domain in Domain]
    assert {item["status"] for item in items} == {"not_assessed"}
    assert items[0]["term"] == "bolig"
    assert len({item["etag"] for item in items}) == len(Domain)
    async with sessionmaker() as session:
        whats = (
            (await session.execute(select(AccessLogEntry.what).where(AccessLogEntry.case_id == case["id"])))
            .scalars()
            .all()
        )
    assert whats == ["domains"]


async def test_patching_a_domain_changes_it_bumps_its_etag_and_records_the_change(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    case_etag = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers["etag"]
    etag = await domain_etag(case_client, headers, case["id"], "work")
    response = await case_client.patch(
        f"/api/v1/cases/{case['id']}/domains/work",
        json={"status": "in_progress", "needs": "No job to go to"},
        headers={**headers, "If-Match": etag},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["needs"], body["settled"]) == ("in_progress", "No job to go to", False)
    assert response.headers["etag"] != etag
    assert response.headers["etag"] == body["etag"]
    # The domain has its own version: the case's ETag is untouched.
    assert (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers[
        "etag"
    ] == case_etag
    entries = [entry for entry in await _timeline(sessionmaker, case["id"]) if entry.entity == "domain"]
    assert [(e.action, e.before, e.after) for e in entries] == [
        (
            "domain.updated",
            {"domain": "work", "status": "not_assessed", "needs": None},
            {"domain": "work", "status": "in_progress", "needs": "No job to go to"},
        )
    ]


async def test_a_stale_domain_etag_is_412_and_changes_nothing(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    url = f"/api/v1/cases/{case['id']}/domains/housing"
    etag = await domain_etag(case_client, headers, case["id"], "housing")
    first = await case_client.patch(
        url, json={"status": "in_progress"}, headers={**headers, "If-Match": etag}
    )
    assert first.status_code == 200
    second = await case_client.patch(url, json={"status": "declined"}, headers={**headers, "If-Match": etag})
    assert second.status_code == 412
    assert second.json()["current_etag"] == first.headers["etag"]
    assert (await case_client.get(url, headers=headers)).json()["status"] == "in_progress"


async def test_the_case_etag_is_not_accepted_for_a_domain(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    case_etag = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers["etag"]
    response = await case_client.patch(
        f"/api/v1/cases/{case['id']}/domains/housing",
        json={"status": "arranged"},
        headers={**headers, "If-Match": case_etag},
    )
    assert response.status_code == 412


async def test_patching_a_domain_without_if_match_is_428(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    response = await case_client.patch(
        f"/api/v1/cases/{case['id']}/domains/debt",
        json={"status": "arranged"},
        headers=directory.coordinator_east,
    )
    assert response.status_code == 428


async def test_hostel_only_on_a_domain_other_than_housing_is_422_and_changes_nothing(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    response = await patch_domain(
        case_client, headers, case["id"], "income", status="arranged", hostel_only=True
    )
    assert response.status_code == 422
    assert response.json()["field"] == "hostel_only"
    after = (await case_client.get(f"/api/v1/cases/{case['id']}/domains/income", headers=headers)).json()
    assert (after["status"], after["hostel_only"]) == ("not_assessed", False)


async def test_arranged_housing_may_be_hostel_only(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    response = await patch_domain(
        case_client, headers, case["id"], "housing", status="arranged", hostel_only=True
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["hostel_only"], response.json()["settled"]) == (
        "arranged",
        True,
        True,
    )


async def test_an_explicit_null_status_is_422(case_client: httpx.AsyncClient, directory: Directory) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    response = await patch_domain(case_client, headers, case["id"], "housing", status=None)
    assert response.status_code == 422


async def test_an_unknown_domain_is_422(case_client: httpx.AsyncClient, directory: Directory) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    response = await case_client.get(
        f"/api/v1/cases/{case['id']}/domains/astrology", headers=directory.coordinator_east
    )
    assert response.status_code == 422


async def test_a_read_only_role_may_read_but_not_change_a_domain(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    auditor = directory.headers("auditor")
    etag = await domain_etag(case_client, auditor, case["id"], "housing")
    response = await case_client.patch(
        f"/api/v1/cases/{case['id']}/domains/housing",
        json={"status": "arranged"},
        headers={**auditor, "If-Match": etag},
    )
    assert response.status_code == 403
    action = await case_client.post(
        f"/api/v1/cases/{case['id']}/domains/housing/actions", json={"description": "x"}, headers=auditor
    )
    assert action.status_code == 403


async def test_a_case_outside_the_viewers_scope_is_404(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    south = directory.headers("coordinator", directory.region_south)
    assert (await case_client.get(f"/api/v1/cases/{case['id']}/domains", headers=south)).status_code == 404
    assert (
        await case_client.get(f"/api/v1/cases/{case['id']}/domains/housing", headers=south)
    ).status_code == 404


async def test_an_action_is_added_marked_done_and_reopened_with_timeline_entries(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    base = f"/api/v1/cases/{case['id']}/domains/housing/actions"
    due = date.today() + timedelta(days=20)
    created = await case_client.post(
        base,
        json={
            "description": "Apply for municipal housing",
            "responsible_organization_id": str(directory.oslo),
            "contact_name": "Ola Saksbehandler",
            "contact_phone": "+47 22 00 00 00",
            "contact_email": "bolig@oslo.example.no",
            "due_date": due.isoformat(),
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    action = created.json()
    assert (action["domain"], action["done"], action["done_at"], action["overdue"]) == (
        "housing",
        False,
        None,
        False,
    )
    assert action["responsible_organization_id"] == str(directory.oslo)
    assert created.headers["etag"] == action["etag"]

    done = await case_client.patch(f"{base}/{action['id']}", json={"done": True}, headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["done"] is True
    assert done.json()["done_at"] is not None

    reopened = await case_client.patch(f"{base}/{action['id']}", json={"done": False}, headers=headers)
    assert reopened.status_code == 200
    assert (reopened.json()["done"], reopened.json()["done_at"]) == (False, None)

    domain = (await case_client.get(f"/api/v1/cases/{case['id']}/domains/housing", headers=headers)).json()
    assert [a["id"] for a in domain["actions"]] == [action["id"]]
    entries = [e for e in await _timeline(sessionmaker, case["id"]) if e.entity == "domain_action"]
    assert [e.action for e in entries] == [
        "domain_action.created",
        "domain_action.completed",
        "domain_action.reopened",
    ]
    assert {e.entity_id for e in entries} == {action["id"]}
    assert entries[1].after is not None
    assert entries[1].after["done_at"] == done.json()["done_at"].replace("Z", "+00:00")


async def test_changing_an_actions_fields_keeps_the_rest(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    base = f"/api/v1/cases/{case['id']}/domains/work/actions"
    action = (
        await case_client.post(base, json={"description": "Meet NAV", "contact_name": "Per"}, headers=headers)
    ).json()
    response = await case_client.patch(
        f"{base}/{action['id']}",
        json={"due_date": "2020-01-01", "contact_name": None},
        headers={**headers, "If-Match": action["etag"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["description"], body["contact_name"], body["due_date"]) == ("Meet NAV", None, "2020-01-01")
    assert body["overdue"] is True


async def test_a_stale_action_etag_is_412(case_client: httpx.AsyncClient, directory: Directory) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    base = f"/api/v1/cases/{case['id']}/domains/debt/actions"
    action = (
        await case_client.post(base, json={"description": "Book debt counselling"}, headers=headers)
    ).json()
    first = await case_client.patch(
        f"{base}/{action['id']}", json={"done": True}, headers={**headers, "If-Match": action["etag"]}
    )
    assert first.status_code == 200
    second = await case_client.patch(
        f"{base}/{action['id']}",
        json={"description": "Other"},
        headers={**headers, "If-Match": action["etag"]},
    )
    assert second.status_code == 412


async def test_an_unknown_responsible_organization_is_422(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    response = await case_client.post(
        f"/api/v1/cases/{case['id']}/domains/housing/actions",
        json={"description": "Apply", "responsible_organization_id": str(uuid.uuid4())},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["field"] == "responsible_organization_id"


async def test_an_action_of_another_domain_is_404(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    action = (
        await case_client.post(
            f"/api/v1/cases/{case['id']}/domains/housing/actions",
            json={"description": "Apply"},
            headers=headers,
        )
    ).json()
    response = await case_client.patch(
        f"/api/v1/cases/{case['id']}/domains/work/actions/{action['id']}",
        json={"done": True},
        headers=headers,
    )
    assert response.status_code == 404


async def test_a_closed_case_refuses_domain_and_action_changes_with_409(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    headers = directory.coordinator_east
    case = await open_case(case_client, headers, unit=directory.unit_oslo)
    base = f"/api/v1/cases/{case['id']}/domains/housing"
    action = (
        await case_client.post(f"{base}/actions", json={"description": "Apply"}, headers=headers)
    ).json()
    etag = await domain_etag(case_client, headers, case["id"], "housing")
    case_etag = (await case_client.get(f"/api/v1/cases/{case['id']}", headers=headers)).headers["etag"]
    closed = await case_client.post(
        f"/api/v1/cases/{case['id']}/status",
        json={"status": "closed"},
        headers={**headers, "If-Match": case_etag},
    )
    assert closed.status_code == 200, closed.text

    patch = await case_client.patch(base, json={"status": "arranged"}, headers={**headers, "If-Match": etag})
    add = await case_client.post(f"{base}/actions", json={"description": "More"}, headers=headers)
    done = await case_client.patch(f"{base}/actions/{action['id']}", json={"done": True}, headers=headers)
    assert (patch.status_code, add.status_code, done.status_code) == (409, 409, 409)
    assert (await case_client.get(base, headers=headers)).json()["status"] == "not_assessed"


async def test_a_municipality_sees_only_the_domains_its_consent_covers(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await set_case(sessionmaker, case["id"], responsible_kommunenummer="0301")
    await give_consent(sessionmaker, case["id"], organization_id=directory.oslo, domains=["housing"])
    oslo = directory.headers("municipality", directory.oslo)

    listed = await case_client.get(f"/api/v1/cases/{case['id']}/domains", headers=oslo)
    assert listed.status_code == 200
    assert [item["domain"] for item in listed.json()["items"]] == ["housing"]
    assert (
        await case_client.get(f"/api/v1/cases/{case['id']}/domains/housing", headers=oslo)
    ).status_code == 200
    hidden = await case_client.get(f"/api/v1/cases/{case['id']}/domains/mental_health", headers=oslo)
    assert hidden.status_code == 404
    async with sessionmaker() as session:
        bases = (
            (
                await session.execute(
                    select(AccessLogEntry.basis).where(
                        AccessLogEntry.case_id == case["id"], AccessLogEntry.actor_role == "municipality"
                    )
                )
            )
            .scalars()
            .all()
        )
    assert bases == ["consent", "consent"]


async def test_another_municipality_does_not_see_the_case(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    await set_case(sessionmaker, case["id"], responsible_kommunenummer="0301")
    await give_consent(sessionmaker, case["id"], organization_id=directory.oslo, domains=["housing"])
    halden = directory.headers("municipality", directory.halden)
    response = await case_client.get(f"/api/v1/cases/{case['id']}/domains", headers=halden)
    assert response.status_code == 404


async def test_adding_an_action_twice_with_one_idempotency_key_creates_one(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    from tests.case_api.conftest import open_case

    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    url = f"/api/v1/cases/{case['id']}/domains/debt/actions"
    headers = {**directory.coordinator_east, "Idempotency-Key": "debt-action-1"}
    first = await case_client.post(url, json={"description": "Book debt counselling"}, headers=headers)
    again = await case_client.post(url, json={"description": "Book debt counselling"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    domain = await case_client.get(
        f"/api/v1/cases/{case['id']}/domains/debt", headers=directory.coordinator_east
    )
    assert len(domain.json()["actions"]) == 1
