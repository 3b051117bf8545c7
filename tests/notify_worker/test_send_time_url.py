"""The webhook URL at send time (docs/notices.md, "The URL at send time"): before every attempt the
worker checks the URL against its own policy, resolving the host once, and connects only to an
address that check allowed. A refused URL is never contacted: the attempt is recorded as
``url_refused``, the delivery fails permanently and the endpoint is disabled.

The endpoint is registered at an in-process agreement-api with the dev flags on (webhook_setup);
its receiver is a real local HTTP server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlmodel import col

from agreement_api.models import AgreementOutbox
from notify_worker.clients import CachedEndpoints
from notify_worker.consumer import make_handler
from notify_worker.deliveries.models import DeliveryState
from notify_worker.notices.models import NoticeState
from notify_worker.notices.service import Ports
from shared import ssrf
from shared.ssrf import IPAddress, UrlPolicy
from tests.conftest import auth
from tests.notify_worker.test_endpoint_health import PartlyDown, health_of
from tests.notify_worker.webhook_setup import Setup, ops_client
from tests.webhook_receiver import Answer

DISABLED = "notice.endpoint_disabled.v1"
ADMIN = auth("admin")


def refused_count() -> float:
    return (
        REGISTRY.get_sample_value(
            "tilbake_notify_delivery_outcomes_total",
            {"state": "failed_permanently", "error_class": "url_refused"},
        )
        or 0.0
    )


def resolving(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    """Resolve ``names`` to the addresses given, none: not at all (the shared resolver seam);
    other names as usual."""
    real = ssrf.resolve

    async def resolve(
        host: str, port: int, *, timeout: float = ssrf.RESOLVE_TIMEOUT_SECONDS
    ) -> list[IPAddress]:
        if host in names:
            if not names[host]:
                raise ssrf.HostNotResolved(f"The host {host!r} could not be resolved")
            return [ipaddress.ip_address(address) for address in names[host]]
        return await real(host, port, timeout=timeout)

    monkeypatch.setattr(ssrf, "resolve", resolve)


async def change_url(setup: Setup, url: str, endpoint_id: uuid.UUID | None = None) -> None:
    """An admin changes the endpoint's URL in agreement-api (dev flags on: local URLs pass)."""
    path = f"/api/v1/webhooks/{endpoint_id or setup.endpoint_id}"
    etag = (await setup.agreement.get(path, headers=ADMIN)).headers["etag"]
    response = await setup.agreement.patch(path, json={"url": url}, headers={**ADMIN, "If-Match": etag})
    assert response.status_code == 200, response.text


@pytest.fixture
async def listener() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP port on 127.0.0.1 that counts the connections made to it (and closes them)."""
    connections: list[int] = []

    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        (UrlPolicy(), "must use https"),
        (UrlPolicy(allow_private=True), "must use https"),
        (UrlPolicy(allow_http=True), "127.0.0.1 is a loopback address"),
    ],
)
async def test_a_local_http_url_stored_under_the_dev_flags_is_not_contacted_when_the_worker_forbids_it(
    database_url: str, setup: Setup, policy: UrlPolicy, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert setup.receiver.url.startswith("http://127.0.0.1:"), "stored with agreement-api's dev flags"
    notice_id = await setup.notice()
    before = refused_count()

    await setup.dispatcher(policy=policy).run_once()

    assert setup.receiver.requests() == [], "nothing was sent"
    notice, delivery, attempts = await setup.state(notice_id)
    assert [(a.status_code, a.error_class) for a in attempts] == [(None, "url_refused")]
    assert (delivery.state, delivery.last_status, delivery.last_error_class) == (
        DeliveryState.FAILED_PERMANENTLY,
        None,
        "url_refused",
    )
    assert notice.state is NoticeState.DEAD, "its one delivery ended without a success"
    endpoint = await setup.endpoint()
    assert (endpoint["state"], endpoint["disabled_reason"]) == ("disabled", "url_refused")
    assert [alert["reason"] for alert in await setup.events(DISABLED)] == ["url_refused"]
    assert refused_count() == before + 1
    assert any(
        why in record.getMessage() for record in caplog.records if "url_refused" in record.getMessage()
    )
    async with ops_client(database_url, setup) as client:
        listed = await client.get("/api/v1/deliveries?state=failed_permanently", headers=ADMIN)
        tried = await client.get(f"/api/v1/deliveries/{delivery.id}/attempts", headers=ADMIN)
    assert [(d["id"], d["last_error_class"]) for d in listed.json()["items"]] == [
        (str(delivery.id), "url_refused")
    ]
    assert [a["error_class"] for a in tried.json()["items"]] == ["url_refused"]


async def test_a_name_that_resolves_to_a_loopback_address_is_refused_at_send_time(
    setup: Setup, listener: tuple[int, list[int]]
) -> None:
    port, connections = listener
    await change_url(setup, f"https://localhost:{port}/hook")  # stored under the dev flags
    notice_id = await setup.notice()

    await setup.dispatcher(policy=UrlPolicy()).run_once()

    _, delivery, attempts = await setup.state(notice_id)
    assert [a.error_class for a in attempts] == ["url_refused"]
    assert delivery.state is DeliveryState.FAILED_PERMANENTLY
    assert connections == [], "no connection was opened"


async def test_every_address_a_name_resolves_to_must_be_public(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Public to agreement-api's check, then one of its answers is internal (a rebinding name).
    resolving(monkeypatch, {"hooks.tilbake.test": ["8.8.8.8"]})
    await change_url(setup, "https://hooks.tilbake.test/notices")
    resolving(monkeypatch, {"hooks.tilbake.test": ["8.8.8.8", "10.0.0.7"]})
    notice_id = await setup.notice()

    await setup.dispatcher(policy=UrlPolicy()).run_once()

    _, delivery, attempts = await setup.state(notice_id)
    assert [(a.status_code, a.error_class) for a in attempts] == [(None, "url_refused")]
    assert (delivery.state, delivery.url) == (
        DeliveryState.FAILED_PERMANENTLY,
        "https://hooks.tilbake.test/notices",
    )


async def test_the_connection_goes_to_the_checked_address_with_the_original_host_header(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # .test names never resolve: only the checked address can have been dialed.
    resolving(monkeypatch, {"receiver.tilbake.test": ["127.0.0.1"]})
    url = f"http://receiver.tilbake.test:{setup.receiver.port}/hooks/main"
    await change_url(setup, url)
    notice_id = await setup.notice()

    await setup.dispatcher().run_once()  # private addresses and http allowed

    [request] = setup.receiver.requests()
    assert request.headers["host"] == f"receiver.tilbake.test:{setup.receiver.port}"
    assert request.verified
    _, delivery, _ = await setup.state(notice_id)
    assert (delivery.state, delivery.url) == (DeliveryState.SUCCEEDED, url)


async def test_a_name_that_no_longer_resolves_is_retried(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolving(monkeypatch, {"hooks.tilbake.test": ["8.8.8.8"]})
    await change_url(setup, "https://hooks.tilbake.test/notices")
    resolving(monkeypatch, {"hooks.tilbake.test": []})
    notice_id = await setup.notice()

    await setup.dispatcher().run_once()

    _, delivery, attempts = await setup.state(notice_id)
    assert [a.error_class for a in attempts] == ["dns_error"]
    assert delivery.state is DeliveryState.PENDING
    assert (await setup.endpoint())["state"] == "active"


async def test_a_retry_after_the_endpoint_s_url_changed_goes_to_the_new_url(setup: Setup) -> None:
    setup.receiver.answers = [Answer(500)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[30])
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    moved = setup.receiver.url_of("moved")
    setup.receiver.secrets["moved"] = setup.receiver.secret
    await change_url(setup, moved)

    await dispatcher.run_once(now + timedelta(seconds=40))  # the retry is due

    assert [(r.endpoint, r.status) for r in setup.receiver.requests()] == [("main", 500), ("moved", 200)]
    first, second = setup.receiver.requests()
    assert second.verified
    assert second.webhook_id == first.webhook_id, "a retry of the same message"
    _, delivery, attempts = await setup.state(notice_id)
    assert (delivery.state, delivery.url, len(attempts)) == (DeliveryState.SUCCEEDED, moved, 2)


async def test_the_endpoint_changed_event_sends_a_retry_kept_in_the_cache_to_the_new_url(
    setup: Setup,
) -> None:
    """The worker keeps endpoint lists for a while; endpoint.changed.v1 drops them (the consumer)."""
    cache = CachedEndpoints(setup.agreements, ttl=3600)
    setup.receiver.answers = [Answer(500)]
    notice_id = await setup.notice()
    dispatcher = setup.dispatcher(schedule=[30], agreements=cache)
    now = datetime.now(UTC)
    await dispatcher.run_once(now)
    moved = setup.receiver.url_of("moved")
    setup.receiver.secrets["moved"] = setup.receiver.secret
    await change_url(setup, moved)
    async with setup.sessionmaker() as session:
        [changed] = (
            await session.execute(
                select(AgreementOutbox).where(col(AgreementOutbox.type) == "endpoint.changed.v1")
            )
        ).scalars()
    await make_handler(setup.sessionmaker, Ports(agreements=setup.agreements, cases=setup.facts), cache)(
        changed.envelope()
    )

    await dispatcher.run_once(now + timedelta(seconds=40))

    assert [r.endpoint for r in setup.receiver.requests()] == ["main", "moved"]
    _, delivery, _ = await setup.state(notice_id)
    assert (delivery.state, delivery.url) == (DeliveryState.SUCCEEDED, moved)


async def test_an_attempt_waits_while_agreement_api_cannot_say_where_the_endpoint_is(setup: Setup) -> None:
    setup.receiver.answers = [Answer(500)]
    notice_id = await setup.notice()
    now = datetime.now(UTC)
    await setup.dispatcher(schedule=[30, 30]).run_once(now)
    before = await health_of(setup)
    assert before is not None
    assert before.failing_since is not None
    partly = PartlyDown(setup.agreements, down={"endpoints_for"})
    try:
        await setup.dispatcher(agreements=partly, schedule=[30, 30]).run_once(now + timedelta(seconds=40))
    finally:
        await partly.aclose()

    assert len(setup.receiver.requests()) == 1, "nothing was sent without the current URL"
    _, delivery, attempts = await setup.state(notice_id)
    assert [a.error_class for a in attempts] == ["server_error", "endpoint_unavailable"]
    assert delivery.state is DeliveryState.PENDING
    after = await health_of(setup)
    assert after is not None
    assert after.failing_since == before.failing_since, "not the receiver's doing"
