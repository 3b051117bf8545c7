"""Endpoint health: a 410 disables the endpoint in agreement-api at once, failures disable it only
after the configured period, each with one alert; its pending deliveries end, and an unreachable
agreement-api is asked again next round. Real receiver, real agreement-api, real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from notify_worker.clients import AgreementClient, SigningKey, WebhookEndpoint
from notify_worker.deliveries import health
from notify_worker.deliveries.models import DeliveryState, NotifyEndpointHealth
from notify_worker.notices.models import NoticeState
from shared.auth import mint_token
from tests.notify_worker.webhook_setup import Setup
from tests.webhook_receiver import Answer

DISABLED = "notice.endpoint_disabled.v1"


class PartlyDown:
    """agreement-api with some calls going to 127.0.0.1:1, where nothing listens: a refused
    connection, as when agreement-api is down."""

    def __init__(self, real: AgreementClient, *, down: set[str]) -> None:
        self.real = real
        self.down = down
        self.nowhere = AgreementClient(
            "http://127.0.0.1:1", mint_token(role="service", subject="notify-worker")
        )

    def _for(self, call: str) -> AgreementClient:
        return self.nowhere if call in self.down else self.real

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        return await self._for("endpoints_for").endpoints_for(organization_id)

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        return await self._for("signing_keys").signing_keys(endpoint_id, at)

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        return await self._for("disable_endpoint").disable_endpoint(endpoint_id, reason)

    async def aclose(self) -> None:
        await self.nowhere.aclose()


async def health_of(setup: Setup, endpoint_id: uuid.UUID | None = None) -> NotifyEndpointHealth | None:
    async with setup.sessionmaker() as session:
        return await session.get(
            NotifyEndpointHealth, endpoint_id or setup.endpoint_id, populate_existing=True
        )


async def test_a_410_disables_the_endpoint_and_ends_its_pending_deliveries(setup: Setup) -> None:
    setup.receiver.answers = [Answer(500), Answer(410)]
    waiting = await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)  # 500: waits for its retry
    gone = await setup.notice()
    await dispatcher.run_once(now + timedelta(seconds=1))  # the new notice's delivery: 410

    endpoint = await setup.endpoint()
    assert (endpoint["state"], endpoint["disabled_reason"]) == ("disabled", "gone")
    _, gone_delivery, gone_attempts = await setup.state(gone)
    assert gone_delivery.state is DeliveryState.FAILED_PERMANENTLY
    row = await health_of(setup)
    assert row is not None
    assert row.disabled_reason == "gone"
    assert row.disabled_at is not None
    first_failure = (await setup.state(waiting))[2][0].at
    assert row.failing_since == first_failure
    assert await setup.events(DISABLED) == [
        {
            "endpoint_id": str(setup.endpoint_id),
            "organization_id": str(setup.organization_id),
            "reason": "gone",
            "failing_since": first_failure.isoformat(),
        }
    ]
    # The delivery that waited for its retry ends at once, and so does its notice.
    notice, delivery, attempts = await setup.state(waiting)
    assert delivery.state is DeliveryState.DEAD
    assert delivery.last_error_class == "endpoint_disabled"
    assert delivery.ended_at is not None
    assert len(attempts) == 1
    assert notice.state is NoticeState.DEAD
    dead = {event["notice_id"]: event for event in await setup.events("notice.dead.v1")}
    assert dead[str(waiting)]["error_classes"] == ["endpoint_disabled"]
    assert dead[str(gone)]["error_classes"] == ["gone"]

    await dispatcher.run_once(now + timedelta(days=1))
    assert len(setup.receiver.bodies) == 2, "nothing more is sent to the endpoint"
    assert len(await setup.events(DISABLED)) == 1, "disabled once"
    assert gone_attempts[0].status_code == 410


async def test_failures_disable_the_endpoint_only_after_the_period(setup: Setup) -> None:
    setup.receiver.default = Answer(503)
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[60] * 10, failure_period=timedelta(hours=1))
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    await dispatcher.run_once(now + timedelta(minutes=30))
    await dispatcher.run_once(now + timedelta(minutes=58))

    _, delivery, attempts = await setup.state(notice_id)
    assert len(attempts) == 3
    assert delivery.state is DeliveryState.PENDING
    assert (await setup.endpoint())["state"] == "active", "58 minutes of failures are not enough"
    assert await setup.events(DISABLED) == []
    row = await health_of(setup)
    assert row is not None
    assert row.failing_since == attempts[0].at
    assert row.last_failure_at == attempts[-1].at
    assert row.disabled_at is None

    await dispatcher.run_once(now + timedelta(minutes=61))
    endpoint = await setup.endpoint()
    assert (endpoint["state"], endpoint["disabled_reason"]) == ("disabled", "sustained_failure")
    [alert] = await setup.events(DISABLED)
    assert alert["reason"] == "sustained_failure"
    assert alert["failing_since"] == attempts[0].at.isoformat()
    notice, delivery, attempts = await setup.state(notice_id)
    assert len(attempts) == 4
    assert delivery.state is DeliveryState.DEAD
    assert delivery.last_error_class == "endpoint_disabled"
    assert notice.state is NoticeState.DEAD


async def test_a_success_starts_the_failure_period_over(setup: Setup) -> None:
    setup.receiver.answers = [Answer(503), Answer(503), Answer(200)]
    setup.receiver.default = Answer(503)
    failing = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[60] * 10, failure_period=timedelta(hours=1))
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    succeeding = await setup.notice(due_at=now + timedelta(minutes=29))
    # The failing delivery is due first (next_attempt_at about now + 60 s), then the new one.
    await dispatcher.run_once(now + timedelta(minutes=30))
    _, ok, _ = await setup.state(succeeding)
    assert ok.state is DeliveryState.SUCCEEDED
    row = await health_of(setup)
    assert row is not None
    assert row.failing_since is None
    assert row.last_success_at is not None

    await dispatcher.run_once(now + timedelta(minutes=61))
    assert (await setup.endpoint())["state"] == "active", "failing for 31 minutes only"
    row = await health_of(setup)
    assert row is not None
    _, _, attempts = await setup.state(failing)
    assert row.failing_since == attempts[-1].at


async def test_a_period_of_zero_never_disables(setup: Setup) -> None:
    setup.receiver.default = Answer(503)
    await setup.notice()
    dispatcher = setup.dispatcher(schedule=[60] * 5, failure_period=None)
    now = datetime.now(UTC)
    for day in range(5):
        await dispatcher.run_once(now + timedelta(days=day))
    assert (await setup.endpoint())["state"] == "active"
    assert await setup.events(DISABLED) == []


async def test_an_unreachable_agreement_api_is_asked_again_next_round(setup: Setup) -> None:
    setup.receiver.answers = [Answer(410)]
    notice_id = await setup.notice()
    partly = PartlyDown(setup.agreements, down={"disable_endpoint"})
    try:
        now = datetime.now(UTC)
        await setup.dispatcher(agreements=partly).run_once(now)
        assert (await setup.endpoint())["state"] == "active"
        row = await health_of(setup)
        assert row is not None
        assert row.disabled_at is None, "not recorded while agreement-api has not disabled it"
        assert await setup.events(DISABLED) == []
        await setup.dispatcher(agreements=partly).run_once(now + timedelta(seconds=5))
        assert await setup.events(DISABLED) == [], "still down"
    finally:
        await partly.aclose()

    await setup.dispatcher().run_once(now + timedelta(seconds=10))  # agreement-api is back
    endpoint = await setup.endpoint()
    assert (endpoint["state"], endpoint["disabled_reason"]) == ("disabled", "gone")
    assert [alert["reason"] for alert in await setup.events(DISABLED)] == ["gone"]
    await setup.dispatcher().run_once(now + timedelta(seconds=15))
    assert len(await setup.events(DISABLED)) == 1
    notice, _, _ = await setup.state(notice_id)
    assert notice.state is NoticeState.DEAD


async def test_attempts_that_never_reached_the_receiver_say_nothing_about_it(setup: Setup) -> None:
    await setup.notice()
    partly = PartlyDown(setup.agreements, down={"signing_keys"})
    try:
        await setup.dispatcher(agreements=partly, failure_period=timedelta(seconds=1)).run_once()
    finally:
        await partly.aclose()
    assert setup.receiver.bodies == []
    assert await health_of(setup) is None
    assert (await setup.endpoint())["state"] == "active"


async def test_an_endpoint_is_disabled_once_and_starts_over_when_enabled_again(setup: Setup) -> None:
    setup.receiver.answers = [Answer(410), Answer(410)]
    await setup.notice()
    dispatcher = setup.dispatcher()
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    # A second worker decides the same a moment later: agreement-api answers, nothing is repeated.
    again = await health.disable(
        setup.sessionmaker, setup.agreements, endpoint_id=setup.endpoint_id, reason="gone", now=now
    )
    assert again is False
    assert len(await setup.events(DISABLED)) == 1

    await setup.enable()  # a person turns it back on; the worker notices when it plans
    await setup.notice()
    await dispatcher.run_once(datetime.now(UTC) + timedelta(seconds=1))
    alerts: list[dict[str, Any]] = await setup.events(DISABLED)
    assert [alert["reason"] for alert in alerts] == ["gone", "gone"], "a new episode, a new alert"
    assert alerts[1]["failing_since"] != alerts[0]["failing_since"]
    assert (await setup.endpoint())["state"] == "disabled"
