"""Cases ready for notices: municipality settled, a release date, a group, consents, agreements."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from tests.agreement_api.agreements.helpers import activate, agreement_body
from tests.case_api.conftest import Directory, identity_number, register_person
from tests.conftest import auth


def in_days(days: int) -> date:
    return (datetime.now(UTC) + timedelta(days=days)).date()


async def etag(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.headers["etag"])


async def ready_case(
    client: httpx.AsyncClient,
    directory: Directory,
    *,
    number: str | None = None,
    release: dict[str, Any] | None = None,
    **case: Any,
) -> str:
    """A case in Oslo prison with NAV Grünerløkka, Oslo confirmed as responsible municipality and
    an expected release date (or ``release``, or none when ``release={}``)."""
    headers = directory.coordinator_east
    person = await register_person(client, headers, identity_number=number or identity_number())
    body = {
        "person_id": person["id"],
        "current_unit_id": str(directory.unit_oslo),
        "planning_basis": "final_judgment",
        "nav_office_id": str(directory.nav_grunerlokka),
        **case,
    }
    opened = await client.post("/api/v1/cases", json=body, headers=headers)
    assert opened.status_code == 201, opened.text
    url = f"/api/v1/cases/{opened.json()['id']}"
    response = await client.put(
        f"{url}/municipality",
        json={"responsible_kommunenummer": "0301", "status": "confirmed"},
        headers={**headers, "If-Match": await etag(client, url, headers)},
    )
    assert response.status_code == 200, response.text
    date_body = (
        {"kind": "expected", "date": in_days(40).isoformat(), "certainty": "probable", "source": "judgment"}
        if release is None
        else release
    )
    if date_body:
        await set_release_date(client, headers, url, date_body)
    return str(opened.json()["id"])


async def set_release_date(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, body: dict[str, Any]
) -> None:
    response = await client.post(
        f"{url}/release-dates", json=body, headers={**headers, "If-Match": await etag(client, url, headers)}
    )
    assert response.status_code in (200, 201), response.text


async def give_consent(
    client: httpx.AsyncClient, directory: Directory, case_id: str, *organization_ids: Any, domains: list[str]
) -> str:
    response = await client.post(
        f"/api/v1/cases/{case_id}/consents",
        json={
            "basis": "consent",
            "organization_ids": [str(organization_id) for organization_id in organization_ids],
            "domains": domains,
        },
        headers=directory.coordinator_east,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def add_member(
    client: httpx.AsyncClient, directory: Directory, case_id: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/cases/{case_id}/group/members", json=body, headers=directory.coordinator_east
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def active_agreement(
    agreements: httpx.AsyncClient,
    directory: Directory,
    *,
    domains: list[str],
    fields: list[str],
    recipient: dict[str, str] | None = None,
) -> str:
    """An active agreement between region east and Oslo municipality with one notice rule whose
    data-sharing profile is ``domains`` and ``fields`` (recipient: the municipality by type)."""
    created = await agreements.post(
        "/api/v1/agreements",
        json=agreement_body(str(directory.region_east), str(directory.oslo), domains=domains),
        headers=auth("coordinator", org=str(directory.region_east)),
    )
    assert created.status_code == 201, created.text
    agreement_id = str(created.json()["id"])
    rule = {
        **(recipient or {"recipient_organization_type": "municipality"}),
        "milestones": [{"days_before_release": 30}],
        "receipt_deadline_days": 5,
        "data_sharing_profile": {"domains": domains, "fields": fields},
    }
    response = await agreements.post(
        f"/api/v1/agreements/{agreement_id}/rules", json=rule, headers=auth("admin")
    )
    assert response.status_code == 201, response.text
    await activate(agreements, agreement_id)
    return agreement_id
