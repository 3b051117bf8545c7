"""The ops surface's lists: notices and deliveries by case, recipient, endpoint and state, page by
page; one notice with its deliveries; a delivery's attempt history; and who may see them."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from notify_worker.notices.models import NoticeKind
from tests.conftest import auth
from tests.notify_worker.webhook_setup import Setup, ops_client
from tests.webhook_receiver import Answer

ADMIN = auth("admin")


async def walk(client: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor page by page."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=query, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= int(params.get("limit", 50))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def deliver_a_known_set(setup: Setup) -> dict[str, uuid.UUID]:
    """case one: a delivered milestone notice and a change notice (the date moved) still retrying (500);
    case two: a delivered notice; a recipient without endpoints: a dead notice."""
    case_one, case_two = uuid.uuid4(), uuid.uuid4()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    ids = {"delivered": await setup.notice(case_id=case_one)}
    await dispatcher.run_once(now)
    setup.receiver.answers = [Answer(500)]
    ids["retrying"] = await setup.notice(
        case_id=case_one, kind=NoticeKind.CHANGE, release_date=date(2027, 3, 8)
    )
    await dispatcher.run_once(now + timedelta(seconds=1))
    ids["other_case"] = await setup.notice(case_id=case_two)
    await dispatcher.run_once(now + timedelta(seconds=2))
    ids["dead"] = await setup.notice(case_id=case_two, organization_id=uuid.uuid4())
    await dispatcher.run_once(now + timedelta(seconds=3))
    ids["case_one"], ids["case_two"] = case_one, case_two
    return ids


async def test_notices_by_case_recipient_and_state_page_by_page(database_url: str, setup: Setup) -> None:
    ids = await deliver_a_known_set(setup)
    async with ops_client(database_url, setup) as client:
        everything = await walk(client, "/api/v1/notices", limit=1)
        by_case = await walk(client, "/api/v1/notices", case_id=str(ids["case_one"]))
        by_recipient = await walk(
            client, "/api/v1/notices", recipient_organization_id=str(setup.organization_id)
        )
        delivered = await walk(client, "/api/v1/notices", state="delivered", limit=1)
        dead_of_case_two = await walk(client, "/api/v1/notices", state="dead", case_id=str(ids["case_two"]))
        claimed = await walk(client, "/api/v1/notices", state="claimed")
        bad_cursor = await client.get("/api/v1/notices", params={"cursor": "nonsense"}, headers=ADMIN)
        bad_state = await client.get("/api/v1/notices", params={"state": "lost"}, headers=ADMIN)

    names = {value: key for key, value in ids.items()}
    assert [names[uuid.UUID(item["id"])] for item in everything] == [
        "delivered",
        "retrying",
        "other_case",
        "dead",
    ]
    assert len({item["id"] for item in everything}) == 4, "no page repeats an item"
    assert {names[uuid.UUID(item["id"])] for item in by_case} == {"delivered", "retrying"}
    assert {names[uuid.UUID(item["id"])] for item in by_recipient} == {"delivered", "retrying", "other_case"}
    assert [names[uuid.UUID(item["id"])] for item in delivered] == ["delivered", "other_case"]
    assert [names[uuid.UUID(item["id"])] for item in dead_of_case_two] == ["dead"]
    assert [names[uuid.UUID(item["id"])] for item in claimed] == ["retrying"]
    first = everything[0]
    assert first["release_date_certainty"] == "probable"
    assert first["coordinator_contact"]["name"] == "Kari Koordinator"
    assert first["delivered_at"] is not None
    assert first["receipt_due_at"] is not None
    assert everything[3]["dead_at"] is not None
    assert bad_cursor.status_code == 400
    assert bad_cursor.headers["content-type"].startswith("application/problem+json")
    assert bad_state.status_code == 422


async def test_a_notice_with_its_deliveries(database_url: str, setup: Setup) -> None:
    ids = await deliver_a_known_set(setup)
    async with ops_client(database_url, setup) as client:
        retrying = await client.get(f"/api/v1/notices/{ids['retrying']}", headers=ADMIN)
        dead = await client.get(f"/api/v1/notices/{ids['dead']}", headers=ADMIN)
        unknown = await client.get(f"/api/v1/notices/{uuid.uuid4()}", headers=ADMIN)
    assert retrying.status_code == 200, retrying.text
    body = retrying.json()
    assert body["state"] == "claimed"
    [delivery] = body["deliveries"]
    assert delivery["endpoint_id"] == str(setup.endpoint_id)
    assert delivery["organization_id"] == str(setup.organization_id)
    assert delivery["state"] == "pending"
    assert (delivery["attempts"], delivery["last_status"], delivery["last_error_class"]) == (
        1,
        500,
        "server_error",
    )
    assert delivery["webhook_id"].startswith("msg_")
    assert delivery["ended_at"] is None
    assert dead.json()["deliveries"] == []
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


async def test_deliveries_by_case_endpoint_recipient_and_state(database_url: str, setup: Setup) -> None:
    ids = await deliver_a_known_set(setup)
    async with ops_client(database_url, setup) as client:
        everything = await walk(client, "/api/v1/deliveries", limit=2)
        by_case = await walk(client, "/api/v1/deliveries", case_id=str(ids["case_one"]), limit=1)
        by_endpoint = await walk(client, "/api/v1/deliveries", endpoint_id=str(setup.endpoint_id))
        other_endpoint = await walk(client, "/api/v1/deliveries", endpoint_id=str(uuid.uuid4()))
        by_recipient = await walk(
            client, "/api/v1/deliveries", recipient_organization_id=str(setup.organization_id)
        )
        pending = await walk(client, "/api/v1/deliveries", state="pending")
        succeeded_of_case_two = await walk(
            client, "/api/v1/deliveries", state="succeeded", case_id=str(ids["case_two"])
        )

    def notices(items: list[dict[str, Any]]) -> list[str]:
        names = {str(value): key for key, value in ids.items()}
        return [names[item["notice_id"]] for item in items]

    assert notices(everything) == ["delivered", "retrying", "other_case"]
    assert notices(by_case) == ["delivered", "retrying"]
    assert notices(by_endpoint) == notices(everything)
    assert other_endpoint == []
    assert notices(by_recipient) == notices(everything)
    assert notices(pending) == ["retrying"]
    assert notices(succeeded_of_case_two) == ["other_case"]


async def test_a_delivery_s_attempt_history(database_url: str, setup: Setup) -> None:
    setup.receiver.answers = [Answer(503), Answer(429, retry_after="1")]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[1, 1, 1])
    now = datetime.now(UTC)
    for step in range(3):
        await dispatcher.run_once(now + timedelta(seconds=10 * step))
    _, delivery, _ = await setup.state(notice_id)
    async with ops_client(database_url, setup) as client:
        history = await walk(client, f"/api/v1/deliveries/{delivery.id}/attempts")
        paged = await walk(client, f"/api/v1/deliveries/{delivery.id}/attempts", limit=1)
        unknown = await client.get(f"/api/v1/deliveries/{uuid.uuid4()}/attempts", headers=ADMIN)
    assert [(a["status_code"], a["error_class"]) for a in history] == [
        (503, "server_error"),
        (429, "rate_limited"),
        (200, None),
    ]
    assert [a["at"] for a in history] == sorted(a["at"] for a in history)
    assert all(isinstance(a["duration_ms"], int) and a["duration_ms"] >= 0 for a in history)
    assert paged == history
    assert unknown.status_code == 404


@pytest.mark.parametrize("role", ["municipality", "nav", "coordinator"])
async def test_only_operators_see_the_ops_surface(database_url: str, setup: Setup, role: str) -> None:
    ids = await deliver_a_known_set(setup)
    _, delivery, _ = await setup.state(ids["retrying"])
    reads = [
        "/api/v1/notices",
        f"/api/v1/notices/{ids['retrying']}",
        "/api/v1/deliveries",
        f"/api/v1/deliveries/{delivery.id}/attempts",
        f"/api/v1/cases/{ids['case_one']}/notices",
    ]
    writes: list[tuple[str, dict[str, Any] | None]] = [
        (f"/api/v1/deliveries/{delivery.id}/redeliver", None),
        (f"/api/v1/endpoints/{setup.endpoint_id}/redeliver", {"since": "2027-01-01T00:00:00+00:00"}),
    ]
    stranger = auth(role, org=str(setup.organization_id))
    async with ops_client(database_url, setup) as client:
        for url in reads:
            assert (await client.get(url, headers=stranger)).status_code == 403, url
            assert (await client.get(url)).status_code == 401, url
            assert (await client.get(url, headers=auth("auditor"))).status_code == 200, url
        for url, body in writes:
            for headers in (stranger, auth("auditor")):
                answer = await client.post(url, json=body, headers=headers)
                assert answer.status_code == 403, url
                assert answer.headers["content-type"].startswith("application/problem+json")
            assert (await client.post(url, json=body)).status_code == 401, url
