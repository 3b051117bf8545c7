from __future__ import annotations

import httpx

from tests.conftest import auth


async def test_admin_registers_a_municipality_and_reads_it_back(agreement_client: httpx.AsyncClient) -> None:
    created = await agreement_client.post(
        "/api/v1/organizations",
        json={"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"},
        headers=auth("admin"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/api/v1/organizations/{body['id']}"
    read = await agreement_client.get(f"/api/v1/organizations/{body['id']}", headers=auth("coordinator"))
    assert read.status_code == 200
    assert read.json()["kommunenummer"] == "3101"


async def test_list_pages_with_a_cursor(agreement_client: httpx.AsyncClient) -> None:
    for number, name in [("0301", "Oslo kommune"), ("4601", "Bergen kommune"), ("5001", "Trondheim kommune")]:
        response = await agreement_client.post(
            "/api/v1/organizations",
            json={"type": "municipality", "name": name, "kommunenummer": number},
            headers=auth("admin"),
        )
        assert response.status_code == 201
    first = await agreement_client.get("/api/v1/organizations?limit=2", headers=auth("nav"))
    assert [o["name"] for o in first.json()["items"]] == ["Bergen kommune", "Oslo kommune"]
    cursor = first.json()["next_cursor"]
    second = await agreement_client.get(f"/api/v1/organizations?limit=2&cursor={cursor}", headers=auth("nav"))
    assert [o["name"] for o in second.json()["items"]] == ["Trondheim kommune"]
    assert second.json()["next_cursor"] is None
