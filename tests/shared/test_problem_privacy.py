"""A problem document never repeats an identity number the request carried: not from the path
(``instance``), not from a JSON key (``errors[].field``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter

from shared.app import ServiceParts, build_app
from shared.logging import NIN_MASK
from tests.conftest import auth, running, test_settings

FNR = "08086740746"
D_NUMBER = "52038530283"  # day 12 + 40


def assert_not_echoed(response: httpx.Response, *numbers: str) -> None:
    """None of ``numbers`` in the body or the headers, in any of its written forms."""
    seen = response.text + "".join(f"{name}: {value}\n" for name, value in response.headers.items())
    for number in numbers:
        assert number not in seen
        assert number[:6] not in seen, f"the first six digits of {number} were echoed"


# --- instance -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "masked"),
    [
        (f"/api/v1/persons/{FNR}", f"/api/v1/persons/{NIN_MASK}"),
        (f"/api/v1/persons/fnr{FNR}", f"/api/v1/persons/fnr{NIN_MASK}"),
        (f"/api/v1/persons/{FNR[:6]}-{FNR[6:]}", f"/api/v1/persons/{NIN_MASK}"),
        (f"/api/v1/no-such-route/dnr.{D_NUMBER[:6]}.{D_NUMBER[6:]}", f"/api/v1/no-such-route/dnr.{NIN_MASK}"),
    ],
)
async def test_instance_masks_an_identity_number_in_a_wrong_url(
    case_client: httpx.AsyncClient, path: str, masked: str
) -> None:
    response = await case_client.get(path, headers=auth("coordinator"))
    assert response.status_code in (404, 422), response.text
    assert response.json()["instance"] == masked
    assert_not_echoed(response, FNR, D_NUMBER)


async def test_instance_masks_the_number_without_a_token_too(case_client: httpx.AsyncClient) -> None:
    response = await case_client.get(f"/api/v1/persons/{FNR}")
    assert response.status_code in (401, 422)
    assert response.json()["instance"] == f"/api/v1/persons/{NIN_MASK}"
    assert_not_echoed(response, FNR)


_exploding = APIRouter(prefix="/api/v1")


@_exploding.get("/explode/{anything}")
async def explode(anything: str) -> None:
    raise RuntimeError("boom")


@pytest.fixture
async def exploding_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(
        test_settings("case_api.config", database_url),
        ServiceParts(name="explode", title="explode", description="", version="0.0.0", api_router=_exploding),
    )
    async with running(app) as client:
        yield client


async def test_a_500_masks_the_number_in_its_instance(exploding_client: httpx.AsyncClient) -> None:
    response = await exploding_client.get(f"/api/v1/explode/{FNR}")
    assert response.status_code == 500
    assert response.json()["instance"] == f"/api/v1/explode/{NIN_MASK}"
    assert_not_echoed(response, FNR)


# --- errors[].field -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({FNR: 1}, f"body.{NIN_MASK}"),
        ({f"fnr{FNR}": 1}, f"body.fnr{NIN_MASK}"),
        ({f"{D_NUMBER[:6]}-{D_NUMBER[6:]}": 1}, f"body.{NIN_MASK}"),
    ],
)
async def test_a_json_key_made_of_an_identity_number_is_masked_in_errors(
    case_client: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await case_client.post(
        "/api/v1/persons",
        json={"given_name": "Kari", "family_name": "Nordmann", "identity_number": "15076500565", **body},
        headers=auth("admin"),
    )
    assert response.status_code == 422, response.text
    assert field in [error["field"] for error in response.json()["errors"]]
    assert_not_echoed(response, FNR, D_NUMBER)
