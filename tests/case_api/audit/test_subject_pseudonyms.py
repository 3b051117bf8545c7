"""A token whose ``sub`` holds an identity number (some identity providers use the fødselsnummer)
is named in the timeline, the access log and every other row case-api writes by a stable keyed
pseudonym, never by the number."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.persons.crypto import SUBJECT_PSEUDONYM_PREFIX
from shared.logging import NIN_MASK
from tests.case_api.conftest import Directory, open_case
from tests.conftest import auth

FNR = "08086740746"


@pytest.mark.parametrize("subject", [FNR, f"idporten:{FNR}", f"fnr{FNR[:6]}-{FNR[6:]}"])
async def test_a_subject_holding_an_identity_number_is_stored_as_a_pseudonym(
    case_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    subject: str,
) -> None:
    coordinator = directory.headers("coordinator", directory.region_east, subject=subject)
    admin = directory.headers("admin", subject=subject)
    case = await open_case(case_client, coordinator, unit=directory.unit_oslo)
    responses = [
        await case_client.get(f"/api/v1/cases/{case['id']}", headers=coordinator),
        await case_client.get(f"/api/v1/cases/{case['id']}/timeline", headers=coordinator),
        await case_client.get(f"/api/v1/cases/{case['id']}/access-log", headers=admin),
    ]
    for response in responses:
        assert response.status_code == 200, response.text
        assert FNR not in response.text
        assert FNR[:6] not in response.text

    async with sessionmaker() as session:
        timeline = (await session.execute(text("SELECT actor FROM case_timeline"))).scalars().all()
        access_log = (await session.execute(text("SELECT actor FROM case_access_log"))).scalars().all()
        created_by = (await session.execute(text("SELECT created_by FROM case_case"))).scalars().all()
    actors = {*timeline, *access_log, *created_by}
    assert timeline
    assert access_log
    assert len(actors) == 1, actors  # one caller, one pseudonym, in every table and role
    (actor,) = actors
    assert actor.startswith(SUBJECT_PSEUDONYM_PREFIX)
    assert FNR not in actor
    assert FNR[:6] not in actor
    assert responses[1].json()["items"][0]["actor"] == actor


async def test_an_ordinary_subject_is_stored_as_it_is(
    case_client: httpx.AsyncClient, directory: Directory, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    coordinator = directory.headers(
        "coordinator", directory.region_east, subject="kari.nordmann@kriminalomsorg"
    )
    case = await open_case(case_client, coordinator, unit=directory.unit_oslo)
    response = await case_client.get(f"/api/v1/cases/{case['id']}/timeline", headers=coordinator)
    assert response.json()["items"][0]["actor"] == "kari.nordmann@kriminalomsorg"


async def test_different_subjects_get_different_pseudonyms(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    actors = []
    for subject in (FNR, "15076500565"):
        coordinator = directory.headers("coordinator", directory.region_east, subject=subject)
        case = await open_case(case_client, coordinator, unit=directory.unit_oslo)
        response = await case_client.get(f"/api/v1/cases/{case['id']}/timeline", headers=coordinator)
        actors.append(response.json()["items"][0]["actor"])
    assert actors[0] != actors[1]
    assert all(actor.startswith(SUBJECT_PSEUDONYM_PREFIX) for actor in actors)


async def test_me_masks_an_identity_number_in_the_subject(case_client: httpx.AsyncClient) -> None:
    response = await case_client.get("/api/v1/me", headers=auth("coordinator", subject=f"idporten:{FNR}"))
    assert response.status_code == 200
    assert response.json()["subject"] == f"idporten:{NIN_MASK}"
