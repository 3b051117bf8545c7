"""GET /cases/{id}/notice-detail: the case as a notice recipient may see it, with agreement-api
in-process on the same database answering which rules apply."""

from __future__ import annotations

import socket
import uuid

import httpx
import pytest
from fastapi import FastAPI

from case_api.notices.agreements import AgreementApi
from shared.auth import RECIPIENT_ROLES, Role, mint_token
from tests.case_api.conftest import Directory, identity_number, use_agreement_api
from tests.case_api.notices.helpers import active_agreement, add_member, give_consent, in_days, ready_case

ALL_FIELDS = [
    "release_date",
    "release_date_certainty",
    "unit",
    "coordinator_contact",
    "domain_status",
    "domain_needs",
    "domain_actions",
    "group_contacts",
]


def detail_url(case_id: str) -> str:
    return f"/api/v1/cases/{case_id}/notice-detail"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_the_recipient_sees_the_profiles_fields_for_the_domains_its_consent_covers(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await active_agreement(
        agreements, directory, domains=["housing", "debt"], fields=["release_date", "unit", "domain_status"]
    )
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing", "work"])

    response = await case_client.get(
        detail_url(case_id), headers=directory.headers("municipality", directory.oslo)
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "case_id": case_id,
        "organization_id": str(directory.oslo),
        "release_date": in_days(40).isoformat(),
        "unit": {"id": str(directory.unit_oslo), "name": "Oslo fengsel"},
        "domains": [{"domain": "housing", "status": "not_assessed"}],
    }


async def test_without_consent_for_a_profile_domain_the_answer_is_404(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await active_agreement(agreements, directory, domains=["housing", "debt"], fields=["release_date"])
    municipality = directory.headers("municipality", directory.oslo)

    assert (await case_client.get(detail_url(case_id), headers=municipality)).status_code == 404
    # Consent for a domain outside the profile does not help either.
    consent_id = await give_consent(case_client, directory, case_id, directory.oslo, domains=["work"])
    assert (await case_client.get(detail_url(case_id), headers=municipality)).status_code == 404
    # Consent for housing opens it; withdrawn, it closes again at once.
    housing = await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])
    assert (await case_client.get(detail_url(case_id), headers=municipality)).status_code == 200
    for withdrawn in (housing, consent_id):
        response = await case_client.post(
            f"/api/v1/cases/{case_id}/consents/{withdrawn}/withdraw",
            json={},
            headers=directory.coordinator_east,
        )
        assert response.status_code == 200, response.text
    assert (await case_client.get(detail_url(case_id), headers=municipality)).status_code == 404


async def test_an_organization_that_is_no_recipient_gets_404_like_an_unknown_case(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await active_agreement(agreements, directory, domains=["housing"], fields=["release_date"])
    # Consent alone does not make a recipient: the health trust and Halden are named in no rule.
    await give_consent(
        case_client,
        directory,
        case_id,
        directory.oslo,
        directory.halden,
        directory.health_trust,
        domains=["housing"],
    )
    unknown = await case_client.get(
        detail_url(str(uuid.uuid4())), headers=directory.headers("municipality", directory.oslo)
    )
    assert unknown.status_code == 404
    for role, org in (("municipality", directory.halden), ("health", directory.health_trust)):
        response = await case_client.get(detail_url(case_id), headers=directory.headers(role, org))
        assert response.status_code == 404, (role, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert {key: response.json()[key] for key in ("title", "detail")} == {
            key: unknown.json()[key] for key in ("title", "detail")
        }
    # The agreement's rule names only the municipality: the NAV office is no recipient either.
    await give_consent(case_client, directory, case_id, directory.nav_grunerlokka, domains=["housing"])
    nav = await case_client.get(
        detail_url(case_id), headers=directory.headers("nav", directory.nav_grunerlokka)
    )
    assert nav.status_code == 404


async def test_the_default_rules_make_the_municipality_and_the_nav_office_recipients(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    """No agreement: agreement-api's default rule set (its profile: date, certainty, unit,
    coordinator, domain status for housing, work, income, debt and social services)."""
    case_id = await ready_case(case_client, directory)
    await give_consent(
        case_client,
        directory,
        case_id,
        directory.oslo,
        directory.nav_grunerlokka,
        domains=["work", "mental_health"],
    )
    for role, org in (("municipality", directory.oslo), ("nav", directory.nav_grunerlokka)):
        response = await case_client.get(detail_url(case_id), headers=directory.headers(role, org))
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {
            "case_id",
            "organization_id",
            "release_date",
            "release_date_certainty",
            "unit",
            "coordinator",
            "domains",
        }
        assert body["organization_id"] == str(org)
        assert body["release_date_certainty"] == "probable"
        assert body["coordinator"] is None  # released by the profile, but the group has none yet
        assert body["domains"] == [{"domain": "work", "status": "not_assessed"}]


async def test_a_release_abroad_has_no_municipal_recipient(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory, release_destination="abroad")
    await give_consent(
        case_client, directory, case_id, directory.oslo, directory.nav_grunerlokka, domains=["work"]
    )
    municipality = await case_client.get(
        detail_url(case_id), headers=directory.headers("municipality", directory.oslo)
    )
    nav = await case_client.get(
        detail_url(case_id), headers=directory.headers("nav", directory.nav_grunerlokka)
    )
    assert (municipality.status_code, nav.status_code) == (404, 200)


async def test_a_municipality_named_by_id_is_no_recipient_of_a_deportation(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    """A rule naming Oslo kommune by id classifies it by its directory type, as a rule naming the
    type does: a deported person's case shows the municipality nothing."""
    recipient = {"recipient_organization_id": str(directory.oslo)}
    await active_agreement(agreements, directory, domains=["housing"], fields=["unit"], recipient=recipient)
    headers = directory.headers("municipality", directory.oslo)
    deported = await ready_case(case_client, directory, release_destination="deportation")
    at_home = await ready_case(case_client, directory)
    for case_id in (deported, at_home):
        await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])

    assert (await case_client.get(detail_url(deported), headers=headers)).status_code == 404
    assert (await case_client.get(detail_url(at_home), headers=headers)).status_code == 200


async def test_every_answer_is_written_to_the_access_log_and_denials_are_not(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await active_agreement(agreements, directory, domains=["housing"], fields=["release_date"])
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])
    assert (
        await case_client.get(
            detail_url(case_id), headers=directory.headers("municipality", directory.halden)
        )
    ).status_code == 404
    for _ in range(2):
        response = await case_client.get(
            detail_url(case_id),
            headers=directory.headers("municipality", directory.oslo, subject="oslo-fagsystem"),
        )
        assert response.status_code == 200, response.text
    admin = await case_client.get(
        detail_url(case_id), params={"organization_id": str(directory.oslo)}, headers=directory.admin
    )
    assert admin.status_code == 200, admin.text

    log = await case_client.get(f"/api/v1/cases/{case_id}/access-log", headers=directory.headers("auditor"))
    entries = [entry for entry in log.json()["items"] if entry["what"] == "case.notice_detail"]
    assert [
        (entry["actor"], entry["actor_role"], entry["actor_organization_id"], entry["basis"])
        for entry in entries
    ] == [
        ("dev-user", "admin", None, "role:admin"),
        ("oslo-fagsystem", "municipality", str(directory.oslo), "consent"),
        ("oslo-fagsystem", "municipality", str(directory.oslo), "consent"),
    ]


async def test_admin_and_auditor_name_whose_view_and_recipients_read_only_their_own(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])
    url = detail_url(case_id)
    own = await case_client.get(url, headers=directory.headers("municipality", directory.oslo))
    assert own.status_code == 200, own.text
    for role in ("admin", "auditor"):
        missing = await case_client.get(url, headers=directory.headers(role))
        assert missing.status_code == 422, missing.text
        assert missing.headers["content-type"] == "application/problem+json"
        view = await case_client.get(
            url, params={"organization_id": str(directory.oslo)}, headers=directory.headers(role)
        )
        assert view.status_code == 200, view.text
        assert view.json() == own.json()
        unknown = await case_client.get(
            url, params={"organization_id": str(uuid.uuid4())}, headers=directory.headers(role)
        )
        assert unknown.status_code == 422, unknown.text
    same = await case_client.get(
        url,
        params={"organization_id": str(directory.oslo)},
        headers=directory.headers("municipality", directory.oslo),
    )
    assert same.status_code == 200
    other = await case_client.get(
        url,
        params={"organization_id": str(directory.oslo)},
        headers=directory.headers("nav", directory.nav_grunerlokka),
    )
    assert other.status_code == 403
    for role, org in (
        ("coordinator", directory.region_east),
        ("prison_staff", directory.unit_oslo),
        ("service", None),
        ("integration_admin", directory.oslo),
    ):
        response = await case_client.get(url, headers=directory.headers(role, org))
        assert response.status_code == 403, (role, response.text)


@pytest.mark.parametrize("role", sorted(Role))
async def test_only_the_recipient_roles_of_the_organization_read_its_view(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory, role: Role
) -> None:
    """Every role with a token of the recipient (Oslo): the roles notify-worker takes receipts from
    (``shared.auth.RECIPIENT_ROLES``, tests/notify_worker/test_receipts.py) read the view; admin and
    auditor must say whose view; the organization's other roles get 403."""
    case_id = await ready_case(case_client, directory)
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])
    response = await case_client.get(detail_url(case_id), headers=directory.headers(role, directory.oslo))
    if role in RECIPIENT_ROLES:
        assert response.status_code == 200, response.text
    elif role in (Role.ADMIN, Role.AUDITOR):
        assert response.status_code == 422, response.text  # organization_id names whose view
    else:
        assert response.status_code == 403, f"{role}: {response.status_code} {response.text}"


async def test_agreement_api_down_is_503_with_retry_after(
    case_app: FastAPI, case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])
    token = mint_token(role="service", subject="case-api")
    await use_agreement_api(case_app, AgreementApi(f"http://127.0.0.1:{_closed_port()}", token, timeout=2.0))

    response = await case_client.get(
        detail_url(case_id), headers=directory.headers("municipality", directory.oslo)
    )

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["retryable"] is True
    log = await case_client.get(f"/api/v1/cases/{case_id}/access-log", headers=directory.admin)
    assert [entry for entry in log.json()["items"] if entry["what"] == "case.notice_detail"] == []


async def test_agreement_api_answering_500_is_503_too(
    case_app: FastAPI, case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    case_id = await ready_case(case_client, directory)
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing"])
    failing = FastAPI()

    @failing.get("/api/v1/resolution")
    async def resolution() -> None:
        raise RuntimeError("agreement-api is broken")

    transport = httpx.ASGITransport(app=failing, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://agreement-api") as broken:
        await use_agreement_api(case_app, AgreementApi("http://agreement-api", "token", http=broken))
        response = await case_client.get(
            detail_url(case_id), headers=directory.headers("municipality", directory.oslo)
        )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"]


async def test_no_identity_number_and_no_inmate_name_in_the_fullest_view(
    case_client: httpx.AsyncClient, agreements: httpx.AsyncClient, directory: Directory
) -> None:
    number = identity_number()
    case_id = await ready_case(case_client, directory, number=number)
    await active_agreement(
        agreements, directory, domains=["housing", "debt", "mental_health"], fields=ALL_FIELDS
    )
    await give_consent(case_client, directory, case_id, directory.oslo, domains=["housing", "debt"])
    await add_member(
        case_client, directory, case_id, person_name="Kari Nordmann", role="inmate", post_release_contact=True
    )
    await add_member(
        case_client,
        directory,
        case_id,
        person_name="Ola Hansen",
        role="coordinator",
        organization_id=str(directory.region_east),
        contact_email="ola.hansen@kriminalomsorg.no",
    )
    await add_member(
        case_client,
        directory,
        case_id,
        person_name="Lise Bolig",
        role="municipality_social_services",
        organization_id=str(directory.oslo),
        post_release_contact=True,
        contact_phone="+47 21 80 21 80",
    )
    await add_member(
        case_client,
        directory,
        case_id,
        person_name="Dr. Helse",
        role="health",
        organization_id=str(directory.health_trust),
        post_release_contact=True,
    )
    await add_member(
        case_client, directory, case_id, person_name="Mor Nordmann", role="other", post_release_contact=True
    )
    domain_url = f"/api/v1/cases/{case_id}/domains/housing"
    etag = (await case_client.get(domain_url, headers=directory.coordinator_east)).headers["etag"]
    changed = await case_client.patch(
        domain_url,
        json={"status": "in_progress", "needs": "Trenger bolig"},
        headers={**directory.coordinator_east, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    action = await case_client.post(
        f"{domain_url}/actions",
        json={
            "description": "Søke kommunal bolig",
            "contact_name": "Lise Bolig",
            "due_date": in_days(10).isoformat(),
        },
        headers=directory.coordinator_east,
    )
    assert action.status_code == 201, action.text

    response = await case_client.get(
        detail_url(case_id), headers=directory.headers("municipality", directory.oslo)
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert number not in response.text
    assert "Kari" not in response.text
    assert "Nordmann" not in response.text
    assert body["coordinator"]["name"] == "Ola Hansen"
    assert [(item["domain"], item["status"], item["needs"]) for item in body["domains"]] == [
        ("housing", "in_progress", "Trenger bolig"),
        ("debt", "not_assessed", None),
    ]
    assert [(a["description"], a["done"]) for a in body["domains"][0]["actions"]] == [
        ("Søke kommunal bolig", False)
    ]
    # Only contacts acting for an organization; the health member stays hidden without a health domain.
    assert body["group_contacts"] == [
        {
            "name": "Lise Bolig",
            "role": "municipality_social_services",
            "organization_id": str(directory.oslo),
            "phone": "+47 21 80 21 80",
            "email": None,
        }
    ]
    case = await case_client.get(f"/api/v1/cases/{case_id}", headers=directory.admin)
    assert case.json()["person"]["id"] not in response.text  # not even the person's reference
