"""4xx answers that say what is wrong: where a body stops being JSON."""

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
