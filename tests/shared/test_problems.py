"""Every error a service returns is an RFC 9457 problem document of one shape."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from shared.app import ServiceParts, build_app, require_json_body
from shared.errors import UnprocessableEntity
from shared.etag import IfMatch, check_if_match, etag_for
from tests.conftest import auth, running, test_settings

ORGANIZATIONS = "/api/v1/organizations"


def assert_problem(response: httpx.Response, status: int, path: str) -> dict[str, Any]:
    """The common shape; returns the body for the status-specific checks."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].startswith("https://")
    assert isinstance(body["title"], str)
    assert body["title"]
    assert body["status"] == status
    assert body["instance"] == path
    assert body["correlation_id"] == response.headers["x-request-id"]
    return body


# --- a small app exercising the shared pieces the real routers do not reach yet ----------------


class ThingUpdate(BaseModel):
    name: str = Field(min_length=1)


class ReleasePlan(BaseModel):
    starts_on: date
    released_on: date


CURRENT_THING_ETAG = etag_for("thing", 3)

probe_router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_json_body)])


@probe_router.put("/things/{thing_id}")
async def update_thing(
    thing_id: int, body: ThingUpdate, if_match: IfMatch, response: Response
) -> dict[str, Any]:
    check_if_match(if_match, CURRENT_THING_ETAG)
    response.headers["ETag"] = etag_for("thing", 4)
    return {"id": thing_id, "name": body.name}


@probe_router.post("/release-plans")
async def create_release_plan(body: ReleasePlan) -> dict[str, Any]:
    if body.released_on < body.starts_on:
        raise UnprocessableEntity("The release date is before the start of the sentence", field="released_on")
    return {"ok": True}


@probe_router.get("/explode")
async def explode() -> None:
    raise RuntimeError("boom SELECT secret FROM x")


@pytest.fixture
async def probe_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = test_settings("case_api.config", database_url)
    app = build_app(
        settings,
        ServiceParts(
            name="problem-probe",
            title="problem-probe",
            description="Routes that raise each kind of problem.",
            version="0.0.0",
            api_router=probe_router,
        ),
    )
    async with running(app) as client:
        yield client


# --- 401 / 403 --------------------------------------------------------------------------------


async def test_401_without_token_is_a_problem_with_bearer_challenge(
    agreement_client: httpx.AsyncClient,
) -> None:
    response = await agreement_client.get(ORGANIZATIONS)
    body = assert_problem(response, 401, ORGANIZATIONS)
    assert body["type"].endswith("/unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_403_for_a_role_that_may_not_create_organizations(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.post(
        ORGANIZATIONS,
        json={"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"},
        headers=auth("nav"),
    )
    body = assert_problem(response, 403, ORGANIZATIONS)
    assert body["type"].endswith("/forbidden")


# --- 404 / 405 --------------------------------------------------------------------------------


async def test_404_for_an_unknown_organization_id(agreement_client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    path = f"{ORGANIZATIONS}/{missing}"
    response = await agreement_client.get(path, headers=auth("coordinator"))
    body = assert_problem(response, 404, path)
    assert body["type"].endswith("/not-found")
    assert body["title"] == "Organization not found"
    assert str(missing) in body["detail"]


async def test_404_for_an_unknown_route(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.get("/api/v1/no-such-thing", headers=auth("coordinator"))
    body = assert_problem(response, 404, "/api/v1/no-such-thing")
    assert body["type"].endswith("/not-found")
    assert body["title"] == "Not Found"


async def test_405_for_an_unsupported_method_carries_an_allow_header(
    agreement_client: httpx.AsyncClient,
) -> None:
    response = await agreement_client.delete(ORGANIZATIONS, headers=auth("admin"))
    body = assert_problem(response, 405, ORGANIZATIONS)
    assert body["type"].endswith("/method-not-allowed")
    assert body["title"] == "Method Not Allowed"
    # Starlette names the methods of the first route matching the path (GET here), never DELETE.
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert "GET" in allowed
    assert "DELETE" not in allowed


# --- 409 --------------------------------------------------------------------------------------


async def test_409_when_a_municipality_is_registered_twice_names_the_existing_one(
    agreement_client: httpx.AsyncClient,
) -> None:
    municipality = {"type": "municipality", "name": "Fredrikstad kommune", "kommunenummer": "3107"}
    first = await agreement_client.post(ORGANIZATIONS, json=municipality, headers=auth("admin"))
    assert first.status_code == 201, first.text
    second = await agreement_client.post(
        ORGANIZATIONS, json={**municipality, "name": "Fredrikstad"}, headers=auth("admin")
    )
    body = assert_problem(second, 409, ORGANIZATIONS)
    assert body["type"].endswith("/conflict")
    assert body["existing_id"] == first.json()["id"]


# --- 412 / 428 --------------------------------------------------------------------------------


async def test_428_when_an_update_has_no_if_match(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.put("/api/v1/things/7", json={"name": "x"})
    body = assert_problem(response, 428, "/api/v1/things/7")
    assert body["type"].endswith("/precondition-required")


async def test_412_when_if_match_names_a_stale_version(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.put(
        "/api/v1/things/7", json={"name": "x"}, headers={"If-Match": etag_for("thing", 2)}
    )
    body = assert_problem(response, 412, "/api/v1/things/7")
    assert body["type"].endswith("/precondition-failed")
    assert body["current_etag"] == CURRENT_THING_ETAG


@pytest.mark.parametrize("if_match", [CURRENT_THING_ETAG, f'W/"thing-1", {CURRENT_THING_ETAG}', "*"])
async def test_matching_if_match_lets_the_update_through(
    probe_client: httpx.AsyncClient, if_match: str
) -> None:
    response = await probe_client.put("/api/v1/things/7", json={"name": "x"}, headers={"If-Match": if_match})
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == etag_for("thing", 4)


# --- 415 --------------------------------------------------------------------------------------


async def test_415_for_a_body_that_is_not_json(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.post(
        ORGANIZATIONS,
        content=b"type=municipality&name=Halden",
        headers={**auth("admin"), "Content-Type": "text/plain"},
    )
    body = assert_problem(response, 415, ORGANIZATIONS)
    assert body["type"].endswith("/unsupported-media-type")
    assert "text/plain" in body["detail"]


# --- 422 --------------------------------------------------------------------------------------


async def test_422_validation_names_the_field_with_a_bad_organization_number(
    agreement_client: httpx.AsyncClient,
) -> None:
    response = await agreement_client.post(
        ORGANIZATIONS,
        json={"type": "prison", "name": "Halden fengsel", "organization_number": "974760674"},
        headers=auth("admin"),
    )
    body = assert_problem(response, 422, ORGANIZATIONS)
    assert body["type"].endswith("/validation-error")
    assert [error["field"] for error in body["errors"]] == ["body.organization_number"]
    assert "check digit" in body["errors"][0]["message"]


async def test_422_validation_names_a_missing_field(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.post(
        ORGANIZATIONS, json={"type": "municipality", "kommunenummer": "3101"}, headers=auth("admin")
    )
    body = assert_problem(response, 422, ORGANIZATIONS)
    assert {"field": "body.name", "type": "missing"} in [
        {"field": error["field"], "type": error["type"]} for error in body["errors"]
    ]


async def test_422_validation_names_a_query_parameter(agreement_client: httpx.AsyncClient) -> None:
    response = await agreement_client.get(f"{ORGANIZATIONS}?limit=0", headers=auth("coordinator"))
    body = assert_problem(response, 422, ORGANIZATIONS)
    assert [error["field"] for error in body["errors"]] == ["query.limit"]


async def test_422_domain_rule_is_a_problem_with_its_own_type(probe_client: httpx.AsyncClient) -> None:
    response = await probe_client.post(
        "/api/v1/release-plans", json={"starts_on": "2026-03-01", "released_on": "2026-01-15"}
    )
    body = assert_problem(response, 422, "/api/v1/release-plans")
    assert body["type"].endswith("/unprocessable")
    assert body["title"] == "Unprocessable Content"
    assert body["detail"] == "The release date is before the start of the sentence"
    assert body["field"] == "released_on"
    assert "errors" not in body


# --- 500 --------------------------------------------------------------------------------------


async def test_500_hides_the_exception_and_carries_the_correlation_id(
    probe_client: httpx.AsyncClient,
) -> None:
    response = await probe_client.get("/api/v1/explode")
    body = assert_problem(response, 500, "/api/v1/explode")
    assert body["type"].endswith("/internal-error")
    for leak in ("boom", "SELECT", "secret", "Traceback", "RuntimeError"):
        assert leak not in response.text
    assert body["correlation_id"]


async def test_500_echoes_the_callers_request_id(probe_client: httpx.AsyncClient) -> None:
    request_id = "0af7651916cd43dd8448eb211c80319c"
    response = await probe_client.get("/api/v1/explode", headers={"X-Request-ID": request_id})
    body = assert_problem(response, 500, "/api/v1/explode")
    assert response.headers["x-request-id"] == request_id
    assert body["correlation_id"] == request_id
