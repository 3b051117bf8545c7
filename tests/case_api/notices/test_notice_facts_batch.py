"""GET /notice-facts?case_id=…: the notice facts of many cases in one request (role service only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from notify_worker.clients import CaseClient
from shared.auth import mint_token
from tests.case_api.conftest import Directory
from tests.case_api.notices.helpers import add_member, in_days, ready_case, set_release_date

SERVICE = {"Authorization": f"Bearer {mint_token(role='service', subject='notify-worker')}"}
URL = "/api/v1/notice-facts"


def ids_params(case_ids: list[str]) -> list[tuple[str, str]]:
    return [("case_id", case_id) for case_id in case_ids]


@contextmanager
def counted_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while inside, as sent."""
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)


async def varied_cases(client: httpx.AsyncClient, directory: Directory) -> list[str]:
    """Cases that differ in every fact: expected and confirmed dates, none, a coordinator or two."""
    plain = await ready_case(client, directory)
    confirmed = await ready_case(client, directory)
    await set_release_date(
        client,
        directory.coordinator_east,
        f"/api/v1/cases/{confirmed}",
        {"kind": "confirmed", "date": in_days(30).isoformat(), "certainty": "certain", "source": "court"},
    )
    await add_member(
        client,
        directory,
        confirmed,
        person_name="Ola Hansen",
        role="coordinator",
        organization_id=str(directory.region_east),
        contact_email="ola.hansen@kriminalomsorg.no",
    )
    await add_member(client, directory, confirmed, person_name="Siri Senere", role="coordinator")
    undated = await ready_case(client, directory, release={})
    await add_member(client, directory, undated, person_name="Kari Koordinator", role="coordinator")
    return [plain, confirmed, undated]


async def test_each_case_gets_the_answer_of_the_single_question_and_unknown_ids_are_absent(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    case_ids = await varied_cases(case_client, directory)
    unknown = str(uuid.uuid4())

    response = await case_client.get(URL, params=ids_params([unknown, *case_ids]), headers=SERVICE)

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["case_id"] for item in items] == case_ids
    for item in items:
        single = await case_client.get(f"/api/v1/cases/{item['case_id']}/notice-facts", headers=SERVICE)
        assert single.status_code == 200, single.text
        assert item == single.json()
    assert items[1]["release_date_certainty"] == "certain"
    assert items[1]["coordinator"]["name"] == "Ola Hansen"
    assert items[2]["effective_release_date"] is None
    assert items[2]["coordinator"]["name"] == "Kari Koordinator"


async def test_only_unknown_ids_answer_an_empty_list(case_client: httpx.AsyncClient) -> None:
    response = await case_client.get(URL, params=ids_params([str(uuid.uuid4())]), headers=SERVICE)
    assert response.status_code == 200, response.text
    assert response.json() == {"items": []}


async def test_the_number_of_statements_does_not_grow_with_the_cases(
    case_client: httpx.AsyncClient, directory: Directory, engine: AsyncEngine
) -> None:
    case_ids = [*await varied_cases(case_client, directory), *await varied_cases(case_client, directory)]
    counts = []
    for asked in (case_ids[:1], case_ids):
        with counted_statements(engine) as statements:
            response = await case_client.get(URL, params=ids_params(asked), headers=SERVICE)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == len(asked)
        counts.append(len(statements))
    assert counts[0] > 0
    assert counts[1] == counts[0], counts
    with counted_statements(engine) as statements:
        for case_id in case_ids:
            await case_client.get(f"/api/v1/cases/{case_id}/notice-facts", headers=SERVICE)
    assert len(statements) > counts[1]  # the listener sees per-case statements where there are some


async def test_only_the_service_role_may_ask(case_client: httpx.AsyncClient, directory: Directory) -> None:
    case_id = await ready_case(case_client, directory)
    for role, org in (
        ("admin", None),
        ("auditor", None),
        ("coordinator", directory.region_east),
        ("municipality", directory.oslo),
        ("nav", directory.nav_grunerlokka),
    ):
        response = await case_client.get(
            URL, params=ids_params([case_id]), headers=directory.headers(role, org)
        )
        assert response.status_code == 403, (role, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_no_ids_more_than_200_or_a_malformed_id_is_422(case_client: httpx.AsyncClient) -> None:
    for params in ([], ids_params([str(uuid.uuid4()) for _ in range(201)]), ids_params(["12345678901"])):
        response = await case_client.get(URL, params=params, headers=SERVICE)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
    full = await case_client.get(
        URL, params=ids_params([str(uuid.uuid4()) for _ in range(200)]), headers=SERVICE
    )
    assert full.status_code == 200, full.text


async def test_notify_workers_client_reads_the_answer(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    """The contract with notify_worker.clients.CaseClient.notice_facts_many, through its own code."""
    case_ids = [uuid.UUID(case_id) for case_id in await varied_cases(case_client, directory)]
    client = CaseClient(
        "http://case-api", mint_token(role="service", subject="notify-worker"), http=case_client
    )
    unknown = uuid.uuid4()
    facts = await client.notice_facts_many([*case_ids, unknown])
    assert set(facts) == set(case_ids)
    for case_id in case_ids:
        assert facts[case_id] == await client.notice_facts(case_id)
    assert await client.notice_facts_many([]) == {}
