"""Finding a person by identity number: who learns the id, who the name and birth date, and that
every answer naming a person is in the access log (docs/architecture.md, Access rules)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.case_api.conftest import Directory, identity_number, open_case, register_person

DETAILS = {"given_name", "family_name", "birth_date", "created_at"}


async def _lookup(client: httpx.AsyncClient, headers: dict[str, str], number: str) -> httpx.Response:
    return await client.post("/api/v1/persons/lookup", json={"identity_number": number}, headers=headers)


async def _access_log(
    client: httpx.AsyncClient, directory: Directory, person_id: str
) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/persons/{person_id}/access-log", headers=directory.admin)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _person_in_oslo_prison(client: httpx.AsyncClient, directory: Directory) -> tuple[str, str]:
    """A person with a case in Oslo prison (region east): (identity number, person id)."""
    number = identity_number()
    person = await register_person(client, directory.coordinator_east, identity_number=number)
    opened = await client.post(
        "/api/v1/cases",
        json={
            "person_id": person["id"],
            "current_unit_id": str(directory.unit_oslo),
            "planning_basis": "final_judgment",
        },
        headers=directory.coordinator_east,
    )
    assert opened.status_code == 201, opened.text
    return number, person["id"]


async def test_name_and_birth_date_only_for_callers_who_may_read_the_person(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    number, person_id = await _person_in_oslo_prison(case_client, directory)
    callers = {
        "coordinator south": directory.headers("coordinator", directory.region_south),
        "prison staff Sem": directory.headers("prison_staff", directory.unit_sem),
        "admin": directory.admin,
        "coordinator east": directory.coordinator_east,
        "prison staff Oslo": directory.headers("prison_staff", directory.unit_oslo),
    }
    withheld: set[str] = set()
    for name, headers in callers.items():
        found = await _lookup(case_client, headers, number)
        read = await case_client.get(f"/api/v1/persons/{person_id}", headers=headers)
        assert found.status_code == 200, f"{name}: {found.text}"
        body = found.json()
        assert body["id"] == person_id, name
        assert number not in found.text
        if read.status_code == 200:  # the same rule as GET /persons/{id}
            assert body["details_withheld"] is False, name
            assert body["given_name"] == "Kari", name
            assert body["birth_date"] == read.json()["birth_date"], name
        else:
            assert read.status_code == 404, name
            assert "Kari" not in found.text, name
            assert body == {"id": person_id, "details_withheld": True}, name
            withheld.add(name)
    assert withheld == {"coordinator south", "prison staff Sem"}


async def test_a_person_without_a_case_is_shown_to_every_writer_as_get_shows_it(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    number = identity_number()
    person = await register_person(case_client, directory.coordinator_east, identity_number=number)
    south = directory.headers("coordinator", directory.region_south)
    found = await _lookup(case_client, south, number)
    assert found.json()["details_withheld"] is False
    assert found.json()["given_name"] == "Kari"
    assert (await case_client.get(f"/api/v1/persons/{person['id']}", headers=south)).status_code == 200


async def test_an_unregistered_number_is_404_and_logs_nothing(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    await open_case(case_client, directory.coordinator_east, unit=directory.unit_oslo)
    missing = await _lookup(
        case_client, directory.headers("coordinator", directory.region_south), identity_number()
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_every_answer_naming_a_person_is_in_the_access_log(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    number, person_id = await _person_in_oslo_prison(case_client, directory)
    south = directory.headers("coordinator", directory.region_south)
    before = await _access_log(case_client, directory, person_id)

    await _lookup(case_client, directory.coordinator_east, number)
    await _lookup(case_client, south, number)
    duplicate = await case_client.post(
        "/api/v1/persons",
        json={"identity_number": number, "given_name": "Per", "family_name": "Hansen"},
        headers=directory.headers("prison_staff", directory.unit_sem),
    )
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == "application/problem+json"
    assert duplicate.json()["existing_id"] == person_id
    assert "Kari" not in duplicate.text
    assert number not in duplicate.text

    seen = {entry["id"] for entry in before}
    newest_first = [
        (entry["what"], entry["actor_role"], entry["actor_organization_id"], entry["case_id"])
        for entry in await _access_log(case_client, directory, person_id)
        if entry["id"] not in seen and entry["what"] != "access_log"
    ]
    assert newest_first == [
        ("person.exists", "prison_staff", str(directory.unit_sem), None),
        ("person.exists", "coordinator", str(directory.region_south), None),
        ("person.lookup", "coordinator", str(directory.region_east), None),
    ]
