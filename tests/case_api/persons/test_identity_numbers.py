"""National identity numbers: checked, encrypted at rest, never echoed, logged, published or in a URL."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.models import CaseOutbox
from shared.logging import configure_logging
from tests.case_api.conftest import Directory, identity_number


async def test_a_wrong_check_digit_is_a_422_naming_the_field_without_echoing_the_number(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    number = identity_number()
    wrong = number[:10] + str((int(number[10]) + 1) % 10)
    response = await case_client.post(
        "/api/v1/persons",
        json={"identity_number": wrong, "given_name": "Kari", "family_name": "Nordmann"},
        headers=directory.coordinator_east,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.identity_number"
    assert wrong not in response.text


async def test_the_number_is_stored_encrypted_and_never_leaves_in_responses_events_or_logs(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="DEBUG", json=True)
    try:
        number = identity_number()
        headers = directory.coordinator_east
        person = await case_client.post(
            "/api/v1/persons",
            json={"identity_number": number, "given_name": "Kari", "family_name": "Nordmann"},
            headers=headers,
        )
        case = await case_client.post(
            "/api/v1/cases",
            json={
                "person_id": person.json()["id"],
                "current_unit_id": str(directory.unit_oslo),
                "planning_basis": "final_judgment",
            },
            headers=headers,
        )
        found = await case_client.post(
            "/api/v1/persons/lookup", json={"identity_number": number}, headers=headers
        )
        duplicate = await case_client.post(
            "/api/v1/persons",
            json={"identity_number": number, "given_name": "K", "family_name": "N"},
            headers=headers,
        )
        read = await case_client.get(f"/api/v1/cases/{case.json()['id']}", headers=headers)
        logs = capsys.readouterr().err
    finally:
        configure_logging(level="INFO", json=False)
    assert found.status_code == 200
    assert found.json()["id"] == person.json()["id"]
    assert duplicate.status_code == 409
    for response in (person, case, found, duplicate, read):
        assert number not in response.text
    assert number not in logs
    async with sessionmaker() as session:
        stored = (
            await session.execute(text("SELECT identity_hash, identity_ciphertext FROM case_person"))
        ).all()
        events = (await session.execute(select(CaseOutbox))).scalars().all()
        timeline = (
            (
                await session.execute(
                    text("SELECT coalesce(before::text,'') || coalesce(after::text,'') FROM case_timeline")
                )
            )
            .scalars()
            .all()
        )
    assert stored
    assert all(number not in row.identity_hash and number not in row.identity_ciphertext for row in stored)
    assert number not in json.dumps([event.data for event in events])
    assert all(number not in entry for entry in timeline)
