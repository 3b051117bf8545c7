"""The product's central path, written once and run twice: in-process (tests/test_end_to_end.py)
and against the compose stack (tests/deployed/test_compose_journey.py).

agreement-api: organizations, an active agreement with a notice rule and a data-sharing profile, the
municipality's webhook endpoint. case-api: a case with consent and a release date inside the lead
time. notify-worker: consumes case-api's events from RabbitMQ, schedules, delivers a signed webhook
to a receiver that verifies it with the public ``standardwebhooks`` package. The receiver's system
fetches ``detail_url`` exactly as given, with its own token, and sends an accepted receipt; the
named contact shows up in the case's responsibility group (an event back to case-api). A second
case without consent is held and never causes an HTTP call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx

from shared.clock import oslo_today
from tests.case_api.conftest import identity_number
from tests.conftest import auth
from tests.webhook_receiver import Receiver

ADMIN = auth("admin")
T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], *, what: str, timeout: float = 45.0) -> T:
    """Poll ``probe`` until it returns something (not None/False/empty)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return dict(response.json())


async def notice_journey(
    http: httpx.AsyncClient,
    *,
    case_api: str,
    agreement_api: str,
    notify: str,
    receiver: Receiver,
    known_organizations: Callable[[], Awaitable[int]],
) -> None:
    """Run the journey against three base URLs; ``known_organizations`` counts the directory
    entries case-api has learnt (4 once it knows this journey's)."""

    # --- agreement-api: the directory, an agreement and the municipality's endpoint -------------
    async def organization(**body: Any) -> str:
        response = await http.post(f"{agreement_api}/api/v1/organizations", json=body, headers=ADMIN)
        return str((await _created(response))["id"])

    region = await organization(type="region", name="Region øst")
    prison = await organization(type="prison", name="Oslo fengsel", parent_id=region)
    oslo = await organization(type="municipality", name="Oslo kommune", kommunenummer="0301")
    nav = await organization(
        type="nav_office", name="NAV Grünerløkka", kommunenummer="0301", enhetsnummer="9301"
    )
    coordinator = auth("coordinator", org=region)  # the region's: it manages the region's agreements

    agreement = await _created(
        await http.post(
            f"{agreement_api}/api/v1/agreements",
            json={
                "title": "Samarbeidsavtale Oslo",
                "level": "local",
                "valid_from": "2020-01-01",
                "valid_to": None,
                "meeting_cadence": "quarterly",
                "domains": ["housing", "work"],
                "parties": [{"organization_id": region}, {"organization_id": oslo}],
            },
            headers=coordinator,
        )
    )
    await _created(
        await http.post(
            f"{agreement_api}/api/v1/agreements/{agreement['id']}/rules",
            json={
                "recipient_organization_type": "municipality",
                "milestones": [{"days_before_release": 30}],
                "receipt_deadline_days": 3,
                "data_sharing_profile": {
                    "domains": ["housing", "work"],
                    "fields": ["release_date", "release_date_certainty", "unit", "domain_status"],
                },
            },
            headers=ADMIN,
        )
    )
    for status in ("negotiating", "signed", "active"):
        current = await http.get(f"{agreement_api}/api/v1/agreements/{agreement['id']}", headers=ADMIN)
        response = await http.post(
            f"{agreement_api}/api/v1/agreements/{agreement['id']}/status",
            json={"status": status},
            headers={**coordinator, "If-Match": current.headers["etag"]},
        )
        assert response.status_code == 200, response.text
    endpoint = await _created(
        await http.post(
            f"{agreement_api}/api/v1/organizations/{oslo}/webhooks",
            json={"url": receiver.url, "description": "Oslo kommune, mottak"},
            headers=ADMIN,
        )
    )
    receiver.secret = endpoint["key"]["secret"]

    # case-api learns the directory from agreement-api's events over RabbitMQ.
    async def directory_known() -> bool:
        return await known_organizations() >= 4

    await eventually(directory_known, what="case-api to learn the directory")

    # --- case-api: two cases, released in ten days (inside the 30-day lead time) ----------------
    release = oslo_today() + timedelta(days=10)

    async def open_case(*, consent: bool) -> str:
        person = await _created(
            await http.post(
                f"{case_api}/api/v1/persons",
                json={"identity_number": identity_number(), "given_name": "Ola", "family_name": "Nordmann"},
                headers=ADMIN,
            )
        )
        case = await _created(
            await http.post(
                f"{case_api}/api/v1/cases",
                json={
                    "person_id": person["id"],
                    "current_unit_id": prison,
                    "nav_office_id": nav,
                    "planning_basis": "final_judgment",
                },
                headers=ADMIN,
            )
        )
        case_id = str(case["id"])

        async def etag() -> str:
            response = await http.get(f"{case_api}/api/v1/cases/{case_id}", headers=ADMIN)
            return str(response.headers["etag"])

        response = await http.put(
            f"{case_api}/api/v1/cases/{case_id}/municipality",
            json={"responsible_kommunenummer": "0301", "status": "confirmed"},
            headers={**ADMIN, "If-Match": await etag()},
        )
        assert response.status_code == 200, response.text
        await _created(
            await http.post(
                f"{case_api}/api/v1/cases/{case_id}/group/members",
                json={
                    "person_name": "Kari Koordinator",
                    "role": "coordinator",
                    "organization_id": prison,
                    "contact_phone": "+47 22 11 22 33",
                    "contact_email": "kari.koordinator@kriminalomsorg.no",
                },
                headers=ADMIN,
            )
        )
        if consent:
            await _created(
                await http.post(
                    f"{case_api}/api/v1/cases/{case_id}/consents",
                    json={"basis": "consent", "organization_ids": [oslo], "domains": ["housing"]},
                    headers=ADMIN,
                )
            )
        response = await http.post(
            f"{case_api}/api/v1/cases/{case_id}/release-dates",
            json={
                "kind": "expected",
                "date": release.isoformat(),
                "certainty": "probable",
                "source": "judgment",
            },
            headers={**ADMIN, "If-Match": await etag()},
        )
        assert response.status_code in (200, 201), response.text
        return case_id

    without_consent = await open_case(consent=False)
    with_consent = await open_case(consent=True)

    # --- notify-worker: the webhook arrives, signed --------------------------------------------
    async def delivered() -> dict[str, Any] | None:
        verified = [item.payload for item in receiver.received if item.verified]
        return next((body for body in verified if body["case_id"] == with_consent), None)

    notice = await eventually(delivered, what="the webhook for the case with consent")
    assert all(item.verified for item in receiver.received), (
        "every webhook verified with the public standardwebhooks package"
    )
    assert notice["type"] == "notice.release_upcoming.v1"
    assert notice["recipient_organization_id"] == oslo
    assert notice["milestone_days"] == 30
    assert notice["release_date"] == release.isoformat()
    assert notice["release_date_certainty"] == "probable"
    assert notice["coordinator"]["name"] == "Kari Koordinator"
    assert notice["detail_url"] == f"{case_api}/api/v1/cases/{with_consent}/notice-detail"
    raw = json.dumps(notice)
    assert "Nordmann" not in raw, "a thin payload"
    assert "identity_number" not in raw

    # --- the municipality fetches the detail with its own token ---------------------------------
    oslo_token = auth("municipality", org=oslo)
    response = await http.get(notice["detail_url"], headers=oslo_token)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["release_date"] == release.isoformat()
    assert [domain["domain"] for domain in detail["domains"]] == ["housing"], "profile ∩ consent"
    assert "coordinator_contact" not in detail, "not in the profile"
    assert "group_contacts" not in detail
    log = await http.get(f"{case_api}/api/v1/cases/{with_consent}/access-log", headers=ADMIN)
    assert any(
        entry["what"] == "case.notice_detail" and entry["actor_organization_id"] == oslo
        for entry in log.json()["items"]
    ), "the fetch is in the access log"

    # --- the receipt: accepted, with a contact person and a substitute --------------------------
    response = await http.post(
        f"{notify}/api/v1/notices/{notice['notice_id']}/receipts",
        json={
            "status": "accepted",
            "contact": {
                "name": "Per Saksbehandler",
                "phone": "+47 21 80 21 80",
                "email": "per@oslo.kommune.no",
            },
            "substitute": {"name": "Lise Stedfortreder", "email": "lise@oslo.kommune.no"},
        },
        headers=oslo_token,
    )
    assert response.status_code == 201, response.text

    async def contact_in_group() -> list[dict[str, Any]]:
        group = await http.get(f"{case_api}/api/v1/cases/{with_consent}/group", headers=ADMIN)
        return [m for m in group.json()["members"] if m["person_name"] == "Per Saksbehandler"]

    [member] = await eventually(contact_in_group, what="the contact person on the case's group")
    assert member["organization_id"] == oslo
    assert member["post_release_contact"] is True

    # --- without consent: held, and no HTTP call ------------------------------------------------
    response = await http.get(f"{notify}/api/v1/cases/{without_consent}/notices", headers=ADMIN)
    assert response.status_code == 200, response.text
    held = [n for n in response.json()["items"] if n["recipient_organization_id"] == oslo]
    assert held, "the municipality's notice exists"
    assert {(n["state"], n["hold_reason"]) for n in held} == {("held", "no_consent")}
    assert all(item.payload["case_id"] != without_consent for item in receiver.received), "no HTTP call"
    deliveries = await http.get(
        f"{notify}/api/v1/deliveries", params={"case_id": without_consent}, headers=ADMIN
    )
    assert deliveries.status_code == 200, deliveries.text
    assert deliveries.json()["items"] == []
