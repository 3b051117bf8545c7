"""The operators' view of the schedule, redelivery of dead letters, the metrics, and the worker's
ports and token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from notify_worker.clients import AgreementClient, CaseClient, UpstreamError
from notify_worker.deliveries.models import DeliveryState, NotifyDelivery, NotifyEndpointHealth
from notify_worker.main import create_app
from notify_worker.notices.models import NoticeState
from shared.auth import Role, TokenVerifier
from shared.db import unit_of_work
from tests.conftest import auth, running, test_settings
from tests.notify_worker.conftest import World, days, today
from tests.notify_worker.webhook_setup import Setup, ops_client
from tests.webhook_receiver import Answer

ADMIN = auth("admin")


async def test_operators_read_a_case_schedule_and_nobody_else_does(database_url: str, world: World) -> None:
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.set_release(case_id, today() + days(45))
    await world.feed()
    app = create_app(test_settings("notify_worker.config", database_url))
    async with running(app, sessionmaker=world.sessionmaker) as client:
        url = f"/api/v1/cases/{case_id}/notices"
        admin = await client.get(url, headers=auth("admin"))
        auditor = await client.get(url, headers=auth("auditor"))
        coordinator = await client.get(url, headers=auth("coordinator", org=str(uuid.uuid4())))
        anonymous = await client.get(url)
    assert admin.status_code == 200, admin.text
    items = admin.json()["items"]
    assert len(items) == 8
    assert [item["due_at"] for item in items] == sorted(item["due_at"] for item in items)
    assert {item["hold_reason"] for item in items} == {"no_consent"}
    assert auditor.json() == admin.json()
    assert coordinator.status_code == 403
    assert anonymous.status_code == 401


async def test_the_service_token_is_minted_in_dev_and_required_in_production(database_url: str) -> None:
    settings = test_settings("notify_worker.config", database_url)
    principal = await TokenVerifier(settings).principal(settings.bearer_token())
    assert principal.role is Role.SERVICE
    assert principal.subject == "notify-worker"
    given = test_settings("notify_worker.config", database_url, service_token=SecretStr("abc"))
    assert given.bearer_token() == "abc"
    assert "abc" not in repr(given)
    production = given.model_copy(update={"env": "production", "service_token": SecretStr("")})
    with pytest.raises(ValueError, match="SERVICE_TOKEN"):
        production.bearer_token()


async def test_the_ports_send_the_token_and_map_upstream_answers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/resolution":
            if request.url.params.get("kommunenummer") == "9999":
                return httpx.Response(422, json={"title": "Unknown organization"})
            if request.url.params.get("kommunenummer") == "5000":
                return httpx.Response(503)
            return httpx.Response(200, json={"source": "default", "rules": [], "agreements": []})
        organization = request.url.params["organization_id"]
        if organization == str(uuid.UUID(int=0)):
            return httpx.Response(404)
        return httpx.Response(200, json={"allowed": request.url.params["domain"] == "housing"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://upstream")
    agreements = AgreementClient("http://upstream", "tok", http=http)
    cases = CaseClient("http://upstream", "tok", http=http)
    unit, nav = uuid.uuid4(), uuid.uuid4()
    resolved = await agreements.resolve(unit, "0301", nav, ["housing", "work"])
    assert resolved.source == "default"
    assert seen[-1].url.params.get_list("domains") == ["housing", "work"]
    assert seen[-1].url.params["nav_office_id"] == str(nav)
    assert seen[-1].headers["authorization"] == "Bearer tok"
    assert (await agreements.resolve(unit, "9999", None)).source == "none"
    with pytest.raises(UpstreamError):
        await agreements.resolve(unit, "5000", None)
    case = uuid.uuid4()
    assert await cases.may_receive(case, uuid.uuid4(), "housing") is True
    assert await cases.may_receive(case, uuid.uuid4(), "work") is False
    assert await cases.may_receive(case, uuid.UUID(int=0), "housing") is False
    assert seen[-1].url.path == f"/api/v1/cases/{case}/disclosure"
    await http.aclose()


# --- redelivery and metrics -----------------------------------------------------------------------


async def test_a_dead_letter_is_redelivered_with_the_same_webhook_id_and_a_fresh_schedule(
    database_url: str, setup: Setup
) -> None:
    setup.receiver.answers = [Answer(500), Answer(500), Answer(500)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[30])
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    await dispatcher.run_once(now + timedelta(seconds=40))
    notice, delivery, attempts = await setup.state(notice_id)
    assert (notice.state, delivery.state, len(attempts)) == (NoticeState.DEAD, DeliveryState.DEAD, 2)

    async with ops_client(database_url, setup) as client:
        pending = await client.post(f"/api/v1/deliveries/{uuid.uuid4()}/redeliver", headers=ADMIN)
        answer = await client.post(f"/api/v1/deliveries/{delivery.id}/redeliver", headers=ADMIN)
        again = await client.post(f"/api/v1/deliveries/{delivery.id}/redeliver", headers=ADMIN)
    assert pending.status_code == 404
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["state"], body["redeliveries"], body["attempts"], body["ended_at"]) == (
        "pending",
        1,
        2,
        None,
    )
    assert body["webhook_id"] == delivery.webhook_id
    assert again.status_code == 409, "a second call finds nothing dead"
    assert again.headers["content-type"].startswith("application/problem+json")
    notice, delivery, _ = await setup.state(notice_id)
    assert notice.state is NoticeState.CLAIMED
    assert notice.dead_at is None

    # The schedule starts again: a failure after the redelivery is retried after 30 s, although
    # the delivery has used up its schedule before. (The rounds above ran 40 s ahead of the clock;
    # the new run of attempts starts after the last of them.)
    later = now + timedelta(seconds=41)
    await dispatcher.run_once(later)
    notice, delivery, attempts = await setup.state(notice_id)
    assert delivery.state is DeliveryState.PENDING
    assert delivery.attempts == 3
    assert later + timedelta(seconds=23) <= delivery.next_attempt_at <= later + timedelta(seconds=37)
    await dispatcher.run_once(later + timedelta(seconds=40))
    notice, delivery, attempts = await setup.state(notice_id)
    assert [a.status_code for a in attempts] == [500, 500, 500, 200]
    assert delivery.state is DeliveryState.SUCCEEDED
    assert notice.state is NoticeState.DELIVERED
    assert notice.delivered_at == attempts[-1].at
    assert {headers["webhook-id"] for headers in setup.receiver.headers} == {delivery.webhook_id}
    assert len(set(setup.receiver.bodies)) == 1, "the same bytes every time"
    assert [event["notice_id"] for event in await setup.events("notice.dead.v1")] == [str(notice_id)]
    assert [event["notice_id"] for event in await setup.events("notice.delivered.v1")] == [str(notice_id)]


async def test_only_an_ended_delivery_to_an_active_endpoint_is_redelivered(
    database_url: str, setup: Setup
) -> None:
    setup.receiver.answers = [Answer(500), Answer(410)]
    retrying = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    _, pending, _ = await setup.state(retrying)
    gone = await setup.notice()
    async with ops_client(database_url, setup) as client:
        still_pending = await client.post(f"/api/v1/deliveries/{pending.id}/redeliver", headers=ADMIN)
        await dispatcher.run_once(datetime.now(UTC))  # 410: the endpoint is disabled
        _, failed, _ = await setup.state(gone)
        disabled = await client.post(f"/api/v1/deliveries/{failed.id}/redeliver", headers=ADMIN)
        await setup.enable()
        enabled = await client.post(f"/api/v1/deliveries/{failed.id}/redeliver", headers=ADMIN)
    assert still_pending.status_code == 409
    assert failed.state is DeliveryState.FAILED_PERMANENTLY
    assert disabled.status_code == 409
    assert "enable it" in disabled.json()["detail"]
    assert enabled.status_code == 200, enabled.text
    async with setup.sessionmaker() as session:
        health = await session.get(NotifyEndpointHealth, setup.endpoint_id, populate_existing=True)
    assert health is not None
    assert (health.disabled_at, health.failing_since) == (None, None), "enabled again: health starts over"
    await dispatcher.run_once(datetime.now(UTC))
    notice, _, attempts = await setup.state(gone)
    assert [a.status_code for a in attempts] == [410, 200]
    assert notice.state is NoticeState.DELIVERED


async def test_an_endpoint_s_dead_letters_since_a_moment(database_url: str, setup: Setup) -> None:
    setup.receiver.default = Answer(503)
    dispatcher = setup.dispatcher(schedule=[1])
    now = datetime.now(UTC)
    first = await setup.notice()
    await dispatcher.run_once(now)
    await dispatcher.run_once(now + timedelta(seconds=10))  # first dies at about now + 10 s
    second, third = await setup.notice(), await setup.notice()
    await dispatcher.run_once(now + timedelta(minutes=5))
    await dispatcher.run_once(now + timedelta(minutes=5, seconds=10))  # both die about 5 minutes later
    for notice_id in (first, second, third):
        notice, delivery, _ = await setup.state(notice_id)
        assert (notice.state, delivery.state) == (NoticeState.DEAD, DeliveryState.DEAD)
    since = (now + timedelta(minutes=1)).isoformat()
    url = f"/api/v1/endpoints/{setup.endpoint_id}/redeliver"
    async with ops_client(database_url, setup) as client:
        naive = await client.post(url, json={"since": "2027-01-01T00:00:00"}, headers=ADMIN)
        refused = [
            (await client.post(url, json={"since": value}, headers=ADMIN)).status_code
            for value in (0, 1700000000, "1999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00")
        ]
        answer = await client.post(url, json={"since": since}, headers=ADMIN)
        again = await client.post(url, json={"since": since}, headers=ADMIN)
        nobody = await client.post(
            f"/api/v1/endpoints/{uuid.uuid4()}/redeliver", json={"since": since}, headers=ADMIN
        )
    assert naive.status_code == 422
    assert refused == [422, 422, 422, 422]
    assert answer.status_code == 200, answer.text
    expected = {str((await setup.state(n))[1].id) for n in (second, third)}
    assert answer.json()["count"] == 2
    assert set(answer.json()["delivery_ids"]) == expected
    assert again.json() == {"count": 0, "delivery_ids": []}
    assert nobody.json() == {"count": 0, "delivery_ids": []}
    for notice_id, state in (
        (first, NoticeState.DEAD),
        (second, NoticeState.CLAIMED),
        (third, NoticeState.CLAIMED),
    ):
        notice, delivery, _ = await setup.state(notice_id)
        assert notice.state is state
        assert delivery.redeliveries == (0 if notice_id == first else 1)

    setup.receiver.default = Answer(200)
    await dispatcher.run_once(now + timedelta(minutes=6))  # after the last attempt of the rounds above
    assert [(await setup.state(n))[0].state for n in (first, second, third)] == [
        NoticeState.DEAD,
        NoticeState.DELIVERED,
        NoticeState.DELIVERED,
    ]


def sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return float(item.value)
    raise AssertionError(f"no sample {name}{labels}")


async def test_metrics_count_outcomes_and_show_the_backlog_and_its_lag(
    database_url: str, setup: Setup
) -> None:
    outcomes = "tilbake_notify_delivery_outcomes_total"
    known = [
        {"state": "succeeded", "error_class": "none"},
        {"state": "pending", "error_class": "server_error"},
        {"state": "failed_permanently", "error_class": "gone"},
        {"state": "dead", "error_class": "endpoint_disabled"},
    ]
    before = [REGISTRY.get_sample_value(outcomes, labels) or 0.0 for labels in known]
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    setup.receiver.answers = [Answer(200), Answer(200), Answer(503), Answer(410)]
    await setup.notice()
    await setup.notice()
    await dispatcher.run_once(now)  # two succeed
    await setup.notice()
    await dispatcher.run_once(now + timedelta(seconds=1))  # 503: a retry in about 30 s
    await setup.notice()
    await dispatcher.run_once(now + timedelta(seconds=2))  # 410: disabled, the retry ends as dead
    after = [REGISTRY.get_sample_value(outcomes, labels) or 0.0 for labels in known]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1, 1]

    # The backlog: three scheduled notices due (the oldest an hour ago), one not yet; one pending
    # delivery due two minutes ago and one due later.
    real = datetime.now(UTC)
    for due in (timedelta(hours=-1), timedelta(minutes=-10), timedelta(minutes=-1), timedelta(hours=1)):
        await setup.notice(organization_id=uuid.uuid4(), due_at=real + due)
    waiting = await setup.notice(organization_id=uuid.uuid4(), due_at=real + timedelta(days=1))
    async with unit_of_work(setup.sessionmaker) as session:
        for offset in (timedelta(minutes=-2), timedelta(minutes=5)):
            session.add(
                NotifyDelivery(
                    notice_id=waiting,
                    endpoint_id=uuid.uuid4(),
                    organization_id=uuid.uuid4(),
                    url="https://receiver.example/hook",
                    webhook_id=f"msg_{uuid.uuid4().hex}",
                    next_attempt_at=real + offset,
                )
            )
    async with ops_client(database_url, setup) as client:
        scraped = await client.get("/metrics")
    assert scraped.status_code == 200
    text = scraped.text
    assert sample(text, "tilbake_notify_due_backlog", {"queue": "notices"}) == 3
    assert sample(text, "tilbake_notify_due_backlog", {"queue": "deliveries"}) == 1
    assert 3600 <= sample(text, "tilbake_notify_queue_lag_seconds", {"queue": "notices"}) < 3660
    assert 120 <= sample(text, "tilbake_notify_queue_lag_seconds", {"queue": "deliveries"}) < 180
    assert sample(text, outcomes, {"state": "succeeded", "error_class": "none"}) == after[0]
