"""4xx answers that say what is wrong: where a body stops being JSON, and an ETag sent without its
quotes."""

from __future__ import annotations

import httpx

from tests.conftest import auth

ORGANIZATIONS = "/api/v1/organizations"


async def test_a_body_that_is_not_json_names_line_and_column_not_a_field(
    agreement_client: httpx.AsyncClient,
) -> None:
    body = b'{\n  "type": "region",\n  "name": \n}'
    response = await agreement_client.post(
        ORGANIZATIONS, content=body, headers={**auth("admin"), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body", "a character offset is not a field"
    assert error["type"] == "json_invalid"
    assert "line 4, column 1" in error["message"], error["message"]
    assert "Expecting value" in error["message"]


async def test_an_etag_without_its_quotes_is_told_so(agreement_client: httpx.AsyncClient) -> None:
    created = await agreement_client.post(
        ORGANIZATIONS, json={"type": "region", "name": "Region test"}, headers=auth("admin")
    )
    assert created.status_code == 201, created.text
    etag = created.headers["etag"]
    unquoted = await agreement_client.patch(
        created.headers["location"],
        json={"name": "Region prøve"},
        headers={**auth("admin"), "If-Match": etag.strip('"')},
    )
    assert unquoted.status_code == 412
    problem = unquoted.json()
    assert "quotes included" in problem["detail"], problem
    assert problem["current_etag"] == etag
    quoted = await agreement_client.patch(
        created.headers["location"],
        json={"name": "Region prøve"},
        headers={**auth("admin"), "If-Match": etag},
    )
    assert quoted.status_code == 200, quoted.text
