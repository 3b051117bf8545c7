"""Every role against every case-api endpoint, denials included.

One scenario: a case in Oslo prison (region east), Oslo municipality responsible, NAV
Grünerløkka assigned, consent for Oslo municipality, NAV Grünerløkka and the health trust
covering housing, work and mental health. Each (endpoint, caller) pair runs on a fresh copy.

Expected answers: in-scope callers 2xx; a caller whose role may see cases but not this one 404
(existence is not revealed); a role that may never do the thing 403, and so does a token whose
organization cannot be the one its role acts for (``MISFITS``).

agreement-api runs in-process with the same directory and no agreement, so its default rules make
Oslo municipality and NAV Grünerløkka the notice recipients (for the notice detail view).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.case_api.conftest import Directory, identity_number, register_person

# caller name -> (role, directory attribute of its organization or None)
CALLERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "auditor": ("auditor", None),
    "coordinator_in": ("coordinator", "region_east"),
    "coordinator_out": ("coordinator", "region_south"),
    "prison_in": ("prison_staff", "unit_oslo"),
    "prison_out": ("prison_staff", "unit_sem"),
    "municipality_in": ("municipality", "oslo"),
    "municipality_out": ("municipality", "halden"),
    "nav_in": ("nav", "nav_grunerlokka"),
    "nav_out": ("nav", "nav_halden"),
    "health_in": ("health", "health_trust"),
    "health_out": ("health", "ngo"),
    "service_market": ("service_market", "unit_oslo"),
    "integration_admin": ("integration_admin", "oslo"),
    "service": ("service", None),
    # Tokens whose organization cannot be the one their role acts for: 403 on every case route.
    "coordinator_unit": ("coordinator", "unit_oslo"),
    "coordinator_none": ("coordinator", None),
    "prison_region": ("prison_staff", "region_east"),
    "nav_none": ("nav", None),
}

WRITERS_IN = {"admin", "coordinator_in", "prison_in"}
WRITERS_OUT = {"coordinator_out", "prison_out"}
GATED_IN = {"municipality_in", "nav_in", "health_in"}
GATED_OUT = {"municipality_out", "nav_out", "health_out"}
NO_CASE_ROLE = {"service_market", "integration_admin", "service"}
MISFITS = {"coordinator_unit", "coordinator_none", "prison_region", "nav_none"}

# Expected status class per endpoint kind and caller.
READ = {
    **dict.fromkeys(WRITERS_IN | GATED_IN | {"auditor"}, 200),
    **dict.fromkeys(WRITERS_OUT | GATED_OUT, 404),
    **dict.fromkeys(NO_CASE_ROLE | MISFITS, 403),
}
WRITE = {
    **dict.fromkeys(WRITERS_IN, 200),
    **dict.fromkeys(WRITERS_OUT, 404),
    **dict.fromkeys(GATED_IN | GATED_OUT | NO_CASE_ROLE | MISFITS | {"auditor"}, 403),
}
CONSENT_READ = {
    **dict.fromkeys(WRITERS_IN | {"auditor"}, 200),
    **dict.fromkeys(WRITERS_OUT, 404),
    **dict.fromkeys(GATED_IN | GATED_OUT | NO_CASE_ROLE | MISFITS, 403),
}
# The service role (notify-worker) may ask the disclosure question about any case, nothing else.
DISCLOSURE = {**CONSENT_READ, "service": 200}
TIMELINE = {
    **dict.fromkeys({"admin", "auditor", "coordinator_in"}, 200),
    "coordinator_out": 404,
    **dict.fromkeys(set(CALLERS) - {"admin", "auditor", "coordinator_in", "coordinator_out"}, 403),
}
ACCESS_LOG = {
    **dict.fromkeys({"admin", "auditor"}, 200),
    **dict.fromkeys(set(CALLERS) - {"admin", "auditor"}, 403),
}
LIST = {
    **dict.fromkeys(set(CALLERS) - NO_CASE_ROLE - MISFITS, 200),
    **dict.fromkeys(NO_CASE_ROLE | MISFITS, 403),
}
CREATE = {
    **dict.fromkeys(WRITERS_IN | WRITERS_OUT, 200),
    **dict.fromkeys(GATED_IN | GATED_OUT | NO_CASE_ROLE | MISFITS | {"auditor"}, 403),
}
ANYONE = dict.fromkeys(CALLERS, 200)
# What a notice says beyond ids: for notify-worker (the service role) only.
NOTICE_FACTS = {**dict.fromkeys(CALLERS, 403), "service": 200}
# Operators' view of the consumer's dead letters: read by admin and auditor, redriven by admin.
DEAD_LETTERS_READ = {**dict.fromkeys(CALLERS, 403), "admin": 200, "auditor": 200}
DEAD_LETTERS_REDRIVE = {**dict.fromkeys(CALLERS, 403), "admin": 200}
# The detail view a notice links to: recipients (by the rules and with consent) and, naming whose
# view, admin and auditor. A consent-gated role that is no recipient gets 404, like an unknown case.
NOTICE_DETAIL = {
    **dict.fromkeys({"admin", "auditor", "municipality_in", "nav_in"}, 200),
    **dict.fromkeys({"health_in"} | GATED_OUT, 404),
    **dict.fromkeys((WRITERS_IN - {"admin"}) | WRITERS_OUT | NO_CASE_ROLE | MISFITS, 403),
}


@dataclass
class Scenario:
    client: httpx.AsyncClient
    directory: Directory
    case_id: str
    person_id: str
    consent_id: str
    member_id: str
    meeting_id: str
    action_id: str
    identity_number: str

    def headers(self, caller: str) -> dict[str, str]:
        role, org = CALLERS[caller]
        return self.directory.headers(role, getattr(self.directory, org) if org else None)

    async def etag(self, path: str) -> str:
        response = await self.client.get(path, headers=self.directory.admin)
        assert response.status_code == 200, response.text
        return str(response.headers["etag"])

    @property
    def case(self) -> str:
        return f"/api/v1/cases/{self.case_id}"


@pytest.fixture
async def scenario(
    case_client: httpx.AsyncClient, directory: Directory, agreements: httpx.AsyncClient
) -> Scenario:
    return await build_scenario(case_client, directory)


async def build_scenario(case_client: httpx.AsyncClient, directory: Directory) -> Scenario:
    admin = directory.coordinator_east
    number = identity_number()
    person = await register_person(case_client, admin, identity_number=number)
    opened = await case_client.post(
        "/api/v1/cases",
        json={
            "person_id": person["id"],
            "current_unit_id": str(directory.unit_oslo),
            "planning_basis": "final_judgment",
            "nav_office_id": str(directory.nav_grunerlokka),
        },
        headers=admin,
    )
    assert opened.status_code == 201, opened.text
    case = opened.json()
    url = f"/api/v1/cases/{case['id']}"
    etag = (await case_client.get(url, headers=admin)).headers["etag"]
    municipality = await case_client.put(
        f"{url}/municipality",
        json={"responsible_kommunenummer": "0301", "status": "confirmed"},
        headers={**admin, "If-Match": etag},
    )
    assert municipality.status_code == 200, municipality.text
    release = await case_client.post(
        f"{url}/release-dates",
        json={
            "kind": "expected",
            "date": (datetime.now(UTC) + timedelta(days=20)).date().isoformat(),
            "certainty": "probable",
            "source": "judgment",
        },
        headers={**admin, "If-Match": municipality.headers["etag"]},
    )
    assert release.status_code in (200, 201), release.text
    consent = await case_client.post(
        f"{url}/consents",
        json={
            "basis": "consent",
            "organization_ids": [
                str(directory.oslo),
                str(directory.nav_grunerlokka),
                str(directory.health_trust),
            ],
            "domains": ["housing", "work", "mental_health"],
        },
        headers=admin,
    )
    assert consent.status_code == 201, consent.text
    member = await case_client.post(
        f"{url}/group/members",
        json={
            "person_name": "Ola Hansen",
            "role": "coordinator",
            "organization_id": str(directory.region_east),
        },
        headers=admin,
    )
    assert member.status_code == 201, member.text
    meeting = await case_client.post(
        f"{url}/meetings",
        json={
            "starts_at": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
            "duration_minutes": 60,
            "place": "Oslo fengsel",
            "invited_member_ids": [member.json()["id"]],
        },
        headers=admin,
    )
    assert meeting.status_code == 201, meeting.text
    action = await case_client.post(
        f"{url}/domains/housing/actions", json={"description": "Apply for housing"}, headers=admin
    )
    assert action.status_code == 201, action.text
    return Scenario(
        client=case_client,
        directory=directory,
        case_id=case["id"],
        person_id=case["person"]["id"],
        consent_id=consent.json()["id"],
        member_id=member.json()["id"],
        meeting_id=meeting.json()["id"],
        action_id=action.json()["id"],
        identity_number=number,
    )


Call = Callable[[Scenario, dict[str, str]], Awaitable[httpx.Response]]


def _get(path: Callable[[Scenario], str]) -> Call:
    async def call(s: Scenario, headers: dict[str, str]) -> httpx.Response:
        return await s.client.get(path(s), headers=headers)

    return call


def _role_of(headers: dict[str, str]) -> str:
    """The role in the bearer token (read, not verified: the test minted it)."""
    payload = headers["Authorization"].removeprefix("Bearer ").split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["role"])


async def _notice_detail(s: Scenario, headers: dict[str, str]) -> httpx.Response:
    """Admin and auditor say whose view (Oslo's); recipients read their own."""
    params = {"organization_id": str(s.directory.oslo)} if _role_of(headers) in ("admin", "auditor") else {}
    return await s.client.get(f"{s.case}/notice-detail", params=params, headers=headers)


async def _open_case(s: Scenario, headers: dict[str, str]) -> httpx.Response:
    """A case for a person without one: the scenario's person has an open case already, and a
    person has one at a time."""
    person_id: str | None = s.__dict__.get("_person_without_case")
    if person_id is None:
        person_id = (await register_person(s.client, s.directory.admin))["id"]
        s.__dict__["_person_without_case"] = person_id
    body = {
        "person_id": person_id,
        "current_unit_id": str(s.directory.unit_oslo),
        "planning_basis": "remand_request",
    }
    return await s.client.post("/api/v1/cases", json=body, headers=headers)


def _send(
    method: str,
    path: Callable[[Scenario], str],
    body: Callable[[Scenario], Any],
    etag_of: Callable[[Scenario], str] | None = None,
) -> Call:
    async def call(s: Scenario, headers: dict[str, str]) -> httpx.Response:
        extra = {"If-Match": await s.etag(etag_of(s))} if etag_of else {}
        return await s.client.request(method, path(s), json=body(s), headers={**headers, **extra})

    return call


ENDPOINTS: dict[str, tuple[Call, dict[str, int]]] = {
    "GET /ops/dead-letters": (_get(lambda s: "/api/v1/ops/dead-letters"), DEAD_LETTERS_READ),
    "POST /ops/dead-letters/redrive": (
        _send("POST", lambda s: "/api/v1/ops/dead-letters/redrive", lambda s: None),
        DEAD_LETTERS_REDRIVE,
    ),
    "GET /cases": (_get(lambda s: "/api/v1/cases"), LIST),
    "GET /readiness": (_get(lambda s: "/api/v1/readiness?days=365"), LIST),
    "GET /municipalities": (_get(lambda s: "/api/v1/municipalities?q=Oslo"), ANYONE),
    "POST /persons": (
        _send(
            "POST",
            lambda s: "/api/v1/persons",
            lambda s: {"identity_number": identity_number(), "given_name": "A", "family_name": "B"},
        ),
        CREATE,
    ),
    "POST /persons/lookup": (
        _send("POST", lambda s: "/api/v1/persons/lookup", lambda s: {"identity_number": s.identity_number}),
        CREATE,
    ),
    "POST /cases": (
        _open_case,
        {**CREATE, **dict.fromkeys(WRITERS_OUT, 403)},  # a unit outside the caller's scope is refused
    ),
    "GET /persons/{id}": (_get(lambda s: f"/api/v1/persons/{s.person_id}"), READ),
    "GET /persons/{id}/access-log": (_get(lambda s: f"/api/v1/persons/{s.person_id}/access-log"), ACCESS_LOG),
    "GET /cases/{id}": (_get(lambda s: s.case), READ),
    "PATCH /cases/{id}": (
        _send("PATCH", lambda s: s.case, lambda s: {"priority_groups": ["woman"]}, lambda s: s.case),
        WRITE,
    ),
    "POST /cases/{id}/status": (
        _send("POST", lambda s: f"{s.case}/status", lambda s: {"status": "planning"}, lambda s: s.case),
        WRITE,
    ),
    "POST /cases/{id}/transfer": (
        _send(
            "POST",
            lambda s: f"{s.case}/transfer",
            lambda s: {"to_unit_id": str(s.directory.unit_halden)},
            lambda s: s.case,
        ),
        WRITE,
    ),
    "PUT /cases/{id}/municipality": (
        _send(
            "PUT",
            lambda s: f"{s.case}/municipality",
            lambda s: {"responsible_kommunenummer": "3101", "status": "proposed"},
            lambda s: s.case,
        ),
        WRITE,
    ),
    "GET /cases/{id}/release-dates": (_get(lambda s: f"{s.case}/release-dates"), READ),
    "POST /cases/{id}/release-dates": (
        _send(
            "POST",
            lambda s: f"{s.case}/release-dates",
            lambda s: {
                "kind": "expected",
                "date": (datetime.now(UTC) + timedelta(days=60)).date().isoformat(),
                "certainty": "probable",
                "source": "judgment",
            },
            lambda s: s.case,
        ),
        WRITE,
    ),
    "GET /cases/{id}/domains": (_get(lambda s: f"{s.case}/domains"), READ),
    "GET /cases/{id}/domains/housing": (_get(lambda s: f"{s.case}/domains/housing"), READ),
    "PATCH /cases/{id}/domains/housing": (
        _send(
            "PATCH",
            lambda s: f"{s.case}/domains/housing",
            lambda s: {"status": "in_progress"},
            lambda s: f"{s.case}/domains/housing",
        ),
        WRITE,
    ),
    "POST /cases/{id}/domains/housing/actions": (
        _send(
            "POST",
            lambda s: f"{s.case}/domains/housing/actions",
            lambda s: {"description": "Call the housing office"},
        ),
        WRITE,
    ),
    "PATCH /cases/{id}/domains/housing/actions/{id}": (
        _send("PATCH", lambda s: f"{s.case}/domains/housing/actions/{s.action_id}", lambda s: {"done": True}),
        WRITE,
    ),
    "GET /cases/{id}/group": (_get(lambda s: f"{s.case}/group"), READ),
    "POST /cases/{id}/group/members": (
        _send(
            "POST",
            lambda s: f"{s.case}/group/members",
            lambda s: {"person_name": "Kari Nordmann", "role": "inmate"},
        ),
        WRITE,
    ),
    "GET /cases/{id}/group/members/{id}": (_get(lambda s: f"{s.case}/group/members/{s.member_id}"), READ),
    "PATCH /cases/{id}/group/members/{id}": (
        _send(
            "PATCH",
            lambda s: f"{s.case}/group/members/{s.member_id}",
            lambda s: {"post_release_contact": True},
            lambda s: f"{s.case}/group/members/{s.member_id}",
        ),
        WRITE,
    ),
    "GET /cases/{id}/meetings": (_get(lambda s: f"{s.case}/meetings"), READ),
    "POST /cases/{id}/meetings": (
        _send(
            "POST",
            lambda s: f"{s.case}/meetings",
            lambda s: {
                "starts_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
                "duration_minutes": 60,
                "place": "Rom 2",
                "invited_member_ids": [s.member_id],
            },
        ),
        WRITE,
    ),
    "GET /cases/{id}/meetings/{id}": (_get(lambda s: f"{s.case}/meetings/{s.meeting_id}"), READ),
    "PUT /cases/{id}/meetings/{id}/attendance": (
        _send(
            "PUT",
            lambda s: f"{s.case}/meetings/{s.meeting_id}/attendance",
            lambda s: {"attendance": [{"member_id": s.member_id, "attended": True}]},
            lambda s: f"{s.case}/meetings/{s.meeting_id}",
        ),
        WRITE,
    ),
    "POST /cases/{id}/meetings/{id}/decisions": (
        _send(
            "POST",
            lambda s: f"{s.case}/meetings/{s.meeting_id}/decisions",
            lambda s: {"domain": "housing", "decision": "Apply for a flat"},
        ),
        WRITE,
    ),
    "GET /cases/{id}/consents": (_get(lambda s: f"{s.case}/consents"), CONSENT_READ),
    "GET /cases/{id}/consents/{id}": (_get(lambda s: f"{s.case}/consents/{s.consent_id}"), CONSENT_READ),
    "POST /cases/{id}/consents": (
        _send(
            "POST",
            lambda s: f"{s.case}/consents",
            lambda s: {
                "basis": "legal_basis",
                "legal_reference": "lov § 1",
                "organization_types": ["municipality"],
                "domains": ["housing"],
            },
        ),
        WRITE,
    ),
    "POST /cases/{id}/consents/{id}/withdraw": (
        _send("POST", lambda s: f"{s.case}/consents/{s.consent_id}/withdraw", lambda s: {}),
        WRITE,
    ),
    "GET /cases/{id}/disclosure": (
        _get(lambda s: f"{s.case}/disclosure?organization_id={s.directory.oslo}&domain=housing"),
        DISCLOSURE,
    ),
    "GET /cases/{id}/readiness": (_get(lambda s: f"{s.case}/readiness"), READ),
    "GET /cases/{id}/timeline": (_get(lambda s: f"{s.case}/timeline"), TIMELINE),
    "GET /cases/{id}/access-log": (_get(lambda s: f"{s.case}/access-log"), ACCESS_LOG),
    "GET /cases/{id}/notice-facts": (_get(lambda s: f"{s.case}/notice-facts"), NOTICE_FACTS),
    "GET /cases/{id}/notice-detail": (_notice_detail, NOTICE_DETAIL),
    "GET /notice-facts": (_get(lambda s: f"/api/v1/notice-facts?case_id={s.case_id}"), NOTICE_FACTS),
}


# --- the service market ---------------------------------------------------------------------------
MARKET_ROLES_IN = {"admin", "coordinator_in", "prison_in", "service_market"}
MARKET_OUT = {"coordinator_out", "prison_out"}
MARKET_NONE = set(CALLERS) - MARKET_ROLES_IN - MARKET_OUT - {"auditor"}
MARKET_READ = {
    **dict.fromkeys(MARKET_ROLES_IN | {"auditor"}, 200),
    **dict.fromkeys(MARKET_OUT, 404),
    **dict.fromkeys(MARKET_NONE, 403),
}
MARKET_WRITE = {**MARKET_READ, "auditor": 403}
MARKET_CREATE = {**MARKET_WRITE, **dict.fromkeys(MARKET_OUT, 403)}  # a unit in the body outside scope
PROVIDER_READ = {
    **dict.fromkeys(MARKET_ROLES_IN | MARKET_OUT | {"auditor"}, 200),
    **dict.fromkeys(MARKET_NONE, 403),
}
PROVIDER_WRITE = {**PROVIDER_READ, "auditor": 403}
REQUEST_READ = {**MARKET_READ, "service_market": 403}
REQUEST_WRITE = {**MARKET_WRITE, "service_market": 403}
REQUEST_CREATE = REQUEST_WRITE  # the case is named in the body: out of scope is 404


async def market(s: Scenario) -> dict[str, str]:
    """A provider, two sessions and a request in Oslo prison, and an escort-confirmed appointment."""
    cached: dict[str, str] | None = s.__dict__.get("_market")
    if cached is not None:
        return cached
    admin = s.directory.admin
    base = "/api/v1/market"
    provider = await s.client.post(
        f"{base}/providers",
        json={"organization_id": str(s.directory.nav_grunerlokka), "name": "NAV", "kind": "nav"},
        headers=admin,
    )
    assert provider.status_code == 201, provider.text
    start = (datetime.now(UTC) + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    ids: dict[str, str] = {"provider_id": provider.json()["id"]}
    for name, offset in (("session_id", 0), ("other_session_id", 5)):
        created = await s.client.post(
            f"{base}/sessions",
            json={
                "unit_id": str(s.directory.unit_oslo),
                "provider_id": ids["provider_id"],
                "format": "one_to_one",
                "location_type": "service_market_room",
                "starts_at": (start + timedelta(hours=offset)).isoformat(),
                "ends_at": (start + timedelta(hours=offset + 1)).isoformat(),
                "capacity": 20,
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
        ids[name] = created.json()["items"][0]["id"]
    request = await s.client.post(
        f"{base}/requests",
        json={"case_id": s.case_id, "channel": "request_slip", "wanted_domain": "work"},
        headers=admin,
    )
    assert request.status_code == 201, request.text
    ids["request_id"] = request.json()["id"]
    appointment = await s.client.post(
        f"{base}/appointments", json={"session_id": ids["session_id"], "case_id": s.case_id}, headers=admin
    )
    assert appointment.status_code == 201, appointment.text
    ids["appointment_id"] = appointment.json()["id"]
    url = f"{base}/appointments/{ids['appointment_id']}"
    etag = await s.etag(url)
    confirmed = await s.client.post(
        f"{url}/transitions", json={"to": "escort_confirmed"}, headers={**admin, "If-Match": etag}
    )
    assert confirmed.status_code == 200, confirmed.text
    s.__dict__["_market"] = ids
    return ids


def _market_call(
    method: str,
    path: Callable[[dict[str, str], Scenario], str],
    body: Callable[[dict[str, str], Scenario], Any] | None = None,
    etag_of: Callable[[dict[str, str], Scenario], str] | None = None,
    before: Callable[[Scenario, dict[str, str]], Awaitable[None]] | None = None,
) -> Call:
    async def call(s: Scenario, headers: dict[str, str]) -> httpx.Response:
        ids = await market(s)
        if before is not None:
            await before(s, ids)
        extra = {"If-Match": await s.etag(etag_of(ids, s))} if etag_of else {}
        return await s.client.request(
            method,
            path(ids, s),
            json=body(ids, s) if body else None,
            headers={**headers, **extra},
        )

    return call


async def _checked_in(s: Scenario, ids: dict[str, str]) -> None:
    url = f"/api/v1/market/appointments/{ids['appointment_id']}"
    state = (await s.client.get(url, headers=s.directory.admin)).json()["state"]
    if state == "escort_confirmed":
        response = await s.client.post(
            f"{url}/check-in", json={}, headers={**s.directory.admin, "If-Match": await s.etag(url)}
        )
        assert response.status_code == 200, response.text


def _appointment(ids: dict[str, str], s: Scenario) -> str:
    return f"/api/v1/market/appointments/{ids['appointment_id']}"


async def _put_capacity(s: Scenario, headers: dict[str, str]) -> httpx.Response:
    url = f"/api/v1/market/units/{s.directory.unit_oslo}/capacity"
    current = await s.client.get(url, headers=s.directory.admin)
    extra = {"If-Match": current.headers["etag"]} if "etag" in current.headers else {}
    return await s.client.put(url, json={"escorts_available": 3}, headers={**headers, **extra})


def _unit_q(s: Scenario) -> str:
    return f"unit_id={s.directory.unit_oslo}"


MARKET_ENDPOINTS: dict[str, tuple[Call, dict[str, int]]] = {
    "GET /market/providers": (_market_call("GET", lambda i, s: "/api/v1/market/providers"), PROVIDER_READ),
    "POST /market/providers": (
        _market_call(
            "POST",
            lambda i, s: "/api/v1/market/providers",
            lambda i, s: {"organization_id": str(s.directory.ngo), "name": "Røde Kors", "kind": "volunteer"},
        ),
        PROVIDER_WRITE,
    ),
    "GET /market/providers/{provider_id}": (
        _market_call("GET", lambda i, s: f"/api/v1/market/providers/{i['provider_id']}"),
        PROVIDER_READ,
    ),
    "PATCH /market/providers/{provider_id}": (
        _market_call(
            "PATCH",
            lambda i, s: f"/api/v1/market/providers/{i['provider_id']}",
            lambda i, s: {"name": "NAV Grünerløkka"},
            lambda i, s: f"/api/v1/market/providers/{i['provider_id']}",
        ),
        PROVIDER_WRITE,
    ),
    "GET /market/sessions": (
        _market_call("GET", lambda i, s: f"/api/v1/market/sessions?{_unit_q(s)}"),
        MARKET_READ,
    ),
    "POST /market/sessions": (
        _market_call(
            "POST",
            lambda i, s: "/api/v1/market/sessions",
            lambda i, s: {
                "unit_id": str(s.directory.unit_oslo),
                "provider_id": i["provider_id"],
                "format": "theme_evening",
                "location_type": "other",
                "starts_at": "2027-05-04T16:00:00+02:00",
                "ends_at": "2027-05-04T18:00:00+02:00",
                "capacity": 10,
            },
        ),
        MARKET_CREATE,
    ),
    "GET /market/sessions/{session_id}": (
        _market_call("GET", lambda i, s: f"/api/v1/market/sessions/{i['session_id']}"),
        MARKET_READ,
    ),
    "POST /market/sessions/{session_id}/cancel": (
        _market_call(
            "POST",
            lambda i, s: f"/api/v1/market/sessions/{i['other_session_id']}/cancel",
            lambda i, s: {"reason": "Provider ill", "cause": "provider"},
            lambda i, s: f"/api/v1/market/sessions/{i['other_session_id']}",
        ),
        MARKET_WRITE,
    ),
    "GET /market/requests": (
        _market_call("GET", lambda i, s: f"/api/v1/market/requests?{_unit_q(s)}"),
        REQUEST_READ,
    ),
    "POST /market/requests": (
        _market_call(
            "POST",
            lambda i, s: "/api/v1/market/requests",
            lambda i, s: {
                "case_id": s.case_id,
                "channel": "list_signup",
                "wanted_provider_id": i["provider_id"],
            },
        ),
        REQUEST_CREATE,
    ),
    "GET /market/requests/{request_id}": (
        _market_call("GET", lambda i, s: f"/api/v1/market/requests/{i['request_id']}"),
        REQUEST_READ,
    ),
    "POST /market/requests/{request_id}/triage": (
        _market_call(
            "POST",
            lambda i, s: f"/api/v1/market/requests/{i['request_id']}/triage",
            lambda i, s: {"triage_state": "accepted"},
            lambda i, s: f"/api/v1/market/requests/{i['request_id']}",
        ),
        REQUEST_WRITE,
    ),
    "GET /market/appointments": (
        _market_call("GET", lambda i, s: f"/api/v1/market/appointments?{_unit_q(s)}"),
        MARKET_READ,
    ),
    "POST /market/appointments": (
        _market_call(
            "POST",
            lambda i, s: "/api/v1/market/appointments",
            lambda i, s: {"session_id": i["other_session_id"], "case_id": s.case_id},
        ),
        MARKET_WRITE,
    ),
    "GET /market/appointments/{appointment_id}": (_market_call("GET", _appointment), MARKET_READ),
    "POST /market/appointments/{appointment_id}/transitions": (
        _market_call(
            "POST",
            lambda i, s: f"{_appointment(i, s)}/transitions",
            lambda i, s: {"to": "no_show"},
            _appointment,
        ),
        MARKET_WRITE,
    ),
    "POST /market/appointments/{appointment_id}/check-in": (
        _market_call("POST", lambda i, s: f"{_appointment(i, s)}/check-in", lambda i, s: {}, _appointment),
        MARKET_WRITE,
    ),
    "POST /market/appointments/{appointment_id}/complete": (
        _market_call(
            "POST",
            lambda i, s: f"{_appointment(i, s)}/complete",
            lambda i, s: {"outcome_code": "held"},
            _appointment,
            before=_checked_in,
        ),
        MARKET_WRITE,
    ),
    "GET /market/units/{unit_id}/capacity": (
        _market_call("GET", lambda i, s: f"/api/v1/market/units/{s.directory.unit_oslo}/capacity"),
        MARKET_READ,
    ),
    "PUT /market/units/{unit_id}/capacity": (_put_capacity, MARKET_WRITE),
    "GET /market/day-list": (
        _market_call("GET", lambda i, s: f"/api/v1/market/day-list?{_unit_q(s)}&date=2027-01-05"),
        MARKET_READ,
    ),
    "GET /market/statistics": (
        _market_call(
            "GET", lambda i, s: f"/api/v1/market/statistics?{_unit_q(s)}&from=2027-01-01&to=2027-01-31"
        ),
        MARKET_READ,
    ),
}
ENDPOINTS.update(MARKET_ENDPOINTS)


def test_the_matrix_covers_every_case_api_endpoint() -> None:
    """Against the app's own routes, built as `tilbake openapi` builds docs/openapi/case-api.json
    (tests/test_contracts.py checks that file is not stale)."""
    from case_api.config import Settings
    from case_api.main import create_app

    spec = create_app(Settings(env="test")).openapi()
    routes = {
        f"{method.upper()} {path.removeprefix('/api/v1')}"
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/api/v1") and path != "/api/v1/me"
    }
    normalized = {key.replace("housing", "{domain}").replace("{id}", "{x}") for key in ENDPOINTS}
    expected = {
        route.replace("{case_id}", "{x}")
        .replace("{person_id}", "{x}")
        .replace("{consent_id}", "{x}")
        .replace("{member_id}", "{x}")
        .replace("{meeting_id}", "{x}")
        .replace("{action_id}", "{x}")
        for route in routes
    }
    assert expected == normalized, (
        f"missing: {sorted(expected - normalized)}; unknown: {sorted(normalized - expected)}"
    )


async def _check(s: Scenario, endpoint: str, caller: str) -> None:
    call, expectations = ENDPOINTS[endpoint]
    response = await call(s, s.headers(caller))
    expected = expectations[caller]
    if expected == 200:
        assert 200 <= response.status_code < 300, (
            f"{caller} {endpoint}: {response.status_code} {response.text}"
        )
    else:
        assert response.status_code == expected, (
            f"{caller} {endpoint}: {response.status_code} {response.text}"
        )
        assert response.headers["content-type"] == "application/problem+json"
    if endpoint in ("GET /cases", "GET /readiness") and response.status_code == 200:
        listed = {item.get("case_id") or item.get("id") for item in response.json()["items"]}
        sees_case = caller in WRITERS_IN | GATED_IN | {"auditor"}
        assert (s.case_id in listed) is sees_case, f"{caller} {endpoint} leaks or hides the case"
    if endpoint == "POST /persons/lookup" and response.status_code == 200:
        # Writers out of scope learn the id (to open a case, not register twice), not the name.
        withheld = caller in WRITERS_OUT
        assert response.json()["details_withheld"] is withheld, f"{caller} {endpoint}"
        assert ("given_name" in response.json()) is not withheld, f"{caller} {endpoint}"


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_every_caller_gets_the_expected_answer(scenario: Scenario, endpoint: str) -> None:
    """Denied callers first (they must change nothing), then each allowed caller; a write by an
    allowed caller gets a fresh scenario so one caller's change does not decide the next one's."""
    expectations = ENDPOINTS[endpoint][1]
    for caller in sorted(c for c in CALLERS if expectations[c] != 200):
        await _check(scenario, endpoint, caller)
    allowed = sorted(c for c in CALLERS if expectations[c] == 200)
    for index, caller in enumerate(allowed):
        target = scenario
        if index and not endpoint.startswith("GET "):
            target = await build_scenario(scenario.client, scenario.directory)
        await _check(target, endpoint, caller)


async def test_an_unknown_case_is_404_for_everyone_who_may_read(scenario: Scenario) -> None:
    for caller, expected in READ.items():
        response = await scenario.client.get(
            f"/api/v1/cases/{uuid.uuid4()}", headers=scenario.headers(caller)
        )
        assert response.status_code == (403 if expected == 403 else 404), caller


async def test_consent_gated_readers_do_not_see_uncovered_domains(scenario: Scenario) -> None:
    for caller in sorted(GATED_IN):
        response = await scenario.client.get(
            f"{scenario.case}/domains/debt", headers=scenario.headers(caller)
        )
        assert response.status_code == 404, caller
        listed = await scenario.client.get(f"{scenario.case}/domains", headers=scenario.headers(caller))
        names = (
            {item["domain"] for item in listed.json()["items"]}
            if isinstance(listed.json(), dict)
            else {item["domain"] for item in listed.json()}
        )
        assert names == {"housing", "work", "mental_health"}, caller


async def test_creating_a_person_who_exists_names_the_existing_id(scenario: Scenario) -> None:
    headers = scenario.directory.coordinator_east
    number = identity_number()
    first = await register_person(scenario.client, headers, identity_number=number)
    again = await scenario.client.post(
        "/api/v1/persons",
        json={"identity_number": number, "given_name": "X", "family_name": "Y"},
        headers=headers,
    )
    assert again.status_code == 409
    assert again.json()["existing_id"] == first["id"]
    assert number not in again.text
