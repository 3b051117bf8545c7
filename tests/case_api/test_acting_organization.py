"""A token's organization must be the kind its role acts for (``case_api.access.ACTS_FOR``): a
coordinator a region, prison staff a unit, and so on. Otherwise 403 saying what is needed, on
creates and on reads and lists alike, never a silent empty answer."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.case_api.conftest import Directory, open_case, register_person
from tests.conftest import auth

UNKNOWN = "unknown"
NOT_AN_ID = "not-an-id"


def _headers(directory: Directory, role: str, org: str | None) -> dict[str, str]:
    if org is None:
        return auth(role)
    if org == UNKNOWN:
        return auth(role, org=str(uuid.uuid4()))
    if org == NOT_AN_ID:
        return auth(role, org="region-east")
    return auth(role, org=str(getattr(directory, org)))


def _assert_refused(response: httpx.Response, reason: str, types: list[str] | None) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["reason"] == reason
    assert problem.get("required_organization_types") == types
    assert problem["title"] == "Token's organization does not fit its role"


COORDINATOR_TOKENS = [
    pytest.param("unit_oslo", "wrong_organization_type", id="prison-unit"),
    pytest.param("oslo", "wrong_organization_type", id="municipality"),
    pytest.param(None, "no_organization", id="no-org"),
    pytest.param(UNKNOWN, "unknown_organization", id="unknown-org"),
    pytest.param(NOT_AN_ID, "unknown_organization", id="org-not-an-id"),
]


@pytest.mark.parametrize(("org", "reason"), COORDINATOR_TOKENS)
async def test_a_coordinator_not_acting_for_a_region_may_not_open_a_case(
    case_client: httpx.AsyncClient, directory: Directory, org: str | None, reason: str
) -> None:
    person = await register_person(case_client, directory.coordinator_east)
    response = await case_client.post(
        "/api/v1/cases",
        json={
            "person_id": person["id"],
            "current_unit_id": str(directory.unit_oslo),
            "planning_basis": "final_judgment",
        },
        headers=_headers(directory, "coordinator", org),
    )
    _assert_refused(response, reason, ["region"])
    assert "a Correctional Service region" in response.json()["detail"]
    listed = await case_client.get(
        f"/api/v1/cases?unit_id={directory.unit_oslo}", headers=directory.coordinator_east
    )
    assert listed.json()["items"] == [], "the refused create opened nothing"


@pytest.mark.parametrize(("org", "reason"), COORDINATOR_TOKENS)
async def test_a_coordinator_not_acting_for_a_region_is_told_so_instead_of_an_empty_list(
    case_client: httpx.AsyncClient, directory: Directory, org: str | None, reason: str
) -> None:
    case = await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    headers = _headers(directory, "coordinator", org)
    for path in ("/api/v1/cases", "/api/v1/readiness", f"/api/v1/cases/{case['id']}"):
        _assert_refused(await case_client.get(path, headers=headers), reason, ["region"])


async def test_the_detail_names_the_organization_and_its_type(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    wrong = await case_client.get(
        "/api/v1/cases", headers=directory.headers("coordinator", directory.unit_oslo)
    )
    assert wrong.json()["detail"] == (
        f"A coordinator acts for a Correctional Service region, but Oslo fengsel ({directory.unit_oslo}) "
        "is a prison"
    )
    missing = await case_client.get("/api/v1/cases", headers=auth("coordinator"))
    assert "org claim" in missing.json()["detail"]
    unknown_id = uuid.uuid4()
    unknown = await case_client.get("/api/v1/cases", headers=auth("coordinator", org=str(unknown_id)))
    assert str(unknown_id) in unknown.json()["detail"]


UNIT_TYPES = ["prison", "probation_office", "transitional_housing"]


@pytest.mark.parametrize(
    ("role", "org", "reason", "types"),
    [
        pytest.param(
            "prison_staff", "region_east", "wrong_organization_type", UNIT_TYPES, id="prison-region"
        ),
        pytest.param("prison_staff", None, "no_organization", UNIT_TYPES, id="prison-no-org"),
        pytest.param("municipality", None, "no_organization", None, id="municipality-no-org"),
        pytest.param("nav", UNKNOWN, "unknown_organization", None, id="nav-unknown-org"),
        pytest.param("health", None, "no_organization", None, id="health-no-org"),
    ],
)
async def test_other_roles_are_told_which_organization_they_need(
    case_client: httpx.AsyncClient,
    directory: Directory,
    role: str,
    org: str | None,
    reason: str,
    types: list[str] | None,
) -> None:
    response = await case_client.get("/api/v1/cases", headers=_headers(directory, role, org))
    _assert_refused(response, reason, types)


@pytest.mark.parametrize("role", ["municipality", "nav", "health"])
async def test_the_recipient_roles_may_act_for_any_known_organization(
    case_client: httpx.AsyncClient, directory: Directory, role: str
) -> None:
    response = await case_client.get("/api/v1/cases", headers=directory.headers(role, directory.ngo))
    assert response.status_code == 200, response.text


async def test_service_market_staff_need_a_unit_at_the_market(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    path = f"/api/v1/market/sessions?unit_id={directory.unit_oslo}"
    refused = await case_client.get(path, headers=directory.headers("service_market", directory.region_east))
    _assert_refused(refused, "wrong_organization_type", UNIT_TYPES)
    allowed = await case_client.get(path, headers=directory.headers("service_market", directory.unit_oslo))
    assert allowed.status_code == 200, allowed.text
