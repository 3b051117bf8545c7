"""What delivery tests share: an in-process agreement-api (on the test transaction) with one
organization whose endpoint is the test's receiver (tests.webhook_receiver).

The ``receiver`` and ``setup`` fixtures are in tests/notify_worker/conftest.py; ``setup`` comes from
:func:`start_setup`."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.clients import AgreementClient, EndpointPort, NoticeFacts
from notify_worker.deliveries.dispatcher import Dispatcher
from notify_worker.deliveries.models import NotifyAttempt, NotifyDelivery
from notify_worker.deliveries.sender import WebhookSender
from notify_worker.main import create_app as worker_app
from notify_worker.models import NotifyOutbox
from notify_worker.notices.models import AgreementSource, NoticeKind, NotifyNotice, RecipientKind
from notify_worker.notices.service import Ports
from shared.auth import mint_token
from shared.contracts.events import CoordinatorContact
from shared.db import unit_of_work
from shared.ssrf import UrlPolicy
from tests.conftest import auth, running, test_settings
from tests.webhook_receiver import Receiver

PUBLIC_CASE_API = "https://tilbake.example.no"
LOCAL = UrlPolicy(allow_private=True, allow_http=True)  # the test receivers are http on 127.0.0.1
LEASE = timedelta(minutes=2)
COORDINATOR = CoordinatorContact(
    name="Kari Koordinator", phone="+4790000000", email="kari@kriminalomsorgen.example"
)


class FixedFacts:
    """Stands in for case-api's notice facts where a test is about HTTP toward a receiver."""

    def __init__(self) -> None:
        self.asked: list[uuid.UUID] = []
        self.calls: list[list[uuid.UUID]] = []  # the cases of each notice_facts_many question

    async def notice_facts(self, case_id: uuid.UUID) -> NoticeFacts | None:
        self.asked.append(case_id)
        return NoticeFacts(
            case_id=case_id,
            effective_release_date="2027-03-01",
            release_date_certainty="probable",
            coordinator=COORDINATOR,
        )

    async def notice_facts_many(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, NoticeFacts]:
        """Each case as :meth:`notice_facts` answers it; a case it answers None for is absent."""
        asked = list(case_ids)
        self.calls.append(asked)
        found: dict[uuid.UUID, NoticeFacts] = {}
        for case_id in asked:
            facts = await self.notice_facts(case_id)
            if facts is not None:
                found[case_id] = facts
        return found


class UnreachableFacts:
    """case-api down: every question fails like a refused connection."""

    async def notice_facts_many(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, NoticeFacts]:
        raise httpx.ConnectError(f"case-api is down (asked about {len(list(case_ids))} cases)")


def committed_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    port: EndpointPort,
    sender: WebhookSender,
    *,
    kind: type[Dispatcher] = Dispatcher,
    **kwargs: Any,
) -> Dispatcher:
    """A dispatcher (or a ``kind`` of one) for committed connections, where attempts run side by
    side, asking ``port`` for endpoints and keys and :class:`FixedFacts` for the notice facts;
    ``kwargs`` as Dispatcher takes them."""
    return kind(
        sessionmaker,
        port,
        sender,
        facts=FixedFacts(),
        case_api_public_url=PUBLIC_CASE_API,
        retry_schedule=[30],
        claim_timeout=timedelta(minutes=5),
        lease=LEASE,
        **kwargs,
    )


@dataclass
class Setup:
    sessionmaker: async_sessionmaker[AsyncSession]
    agreement: httpx.AsyncClient
    agreements: AgreementClient
    receiver: Receiver
    organization_id: uuid.UUID
    endpoint_id: uuid.UUID
    facts: Any = field(default_factory=FixedFacts)
    senders: list[WebhookSender] = field(default_factory=list)

    def dispatcher(
        self,
        *,
        read_timeout: float = 5.0,
        schedule: list[float] | None = None,
        failure_period: timedelta | None = None,
        escalation_interval: timedelta | None = None,
        agreements: Any = None,
        concurrency: int = 1,
        policy: UrlPolicy = LOCAL,
    ) -> Dispatcher:
        """A dispatcher on the test transaction. One attempt at a time by default: the worker and
        the in-process agreement-api share the test's one connection, which cannot hold two
        transactions at once (tests/notify_worker/test_throughput.py runs attempts side by side on
        committed connections). ``policy`` is the worker's URL policy at send time."""
        sender = WebhookSender(connect_timeout=2.0, read_timeout=read_timeout, policy=policy)
        self.senders.append(sender)
        return Dispatcher(
            self.sessionmaker,
            agreements or self.agreements,
            sender,
            facts=self.facts,
            case_api_public_url=PUBLIC_CASE_API,
            retry_schedule=schedule or [30, 120, 600],
            claim_timeout=timedelta(minutes=5),
            lease=LEASE,
            failure_period=failure_period,
            escalation_interval=escalation_interval,
            concurrency=concurrency,
        )

    async def notice(
        self,
        *,
        kind: NoticeKind = NoticeKind.MILESTONE,
        case_id: uuid.UUID | None = None,
        organization_id: uuid.UUID | None = None,
        due_at: datetime | None = None,
        milestone_days: int = 30,
        release_date: date = date(2027, 3, 1),
    ) -> uuid.UUID:
        """A scheduled notice to the organization, due a minute ago unless ``due_at`` says when.
        Two notices of one recipient announcing one date at once are one too many: the claim
        cancels such a change notice (docs/notices.md, "One notice, not two")."""
        notice = NotifyNotice(
            case_id=case_id or uuid.uuid4(),
            recipient_organization_id=organization_id or self.organization_id,
            recipient_kind=RecipientKind.MUNICIPALITY,
            agreement_source=AgreementSource.DEFAULT,
            kind=kind,
            milestone_days=milestone_days if kind is NoticeKind.MILESTONE else None,
            release_date=release_date,
            due_at=due_at or datetime.now(UTC) - timedelta(minutes=1),
            receipt_deadline_days=5,
        )
        async with unit_of_work(self.sessionmaker) as session:
            session.add(notice)
        return notice.id

    async def state(self, notice_id: uuid.UUID) -> tuple[NotifyNotice, NotifyDelivery, list[NotifyAttempt]]:
        """The notice, its (only) delivery and that delivery's attempts, oldest first."""
        async with self.sessionmaker() as session:
            notice = await session.get(NotifyNotice, notice_id, populate_existing=True)
            delivery = (
                await session.execute(
                    select(NotifyDelivery)
                    .where(col(NotifyDelivery.notice_id) == notice_id)
                    .execution_options(populate_existing=True)
                )
            ).scalar_one()
            attempts = (
                await session.execute(
                    select(NotifyAttempt)
                    .where(col(NotifyAttempt.delivery_id) == delivery.id)
                    .order_by(col(NotifyAttempt.at))
                )
            ).scalars()
            assert notice is not None
            return notice, delivery, list(attempts)

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        """The data of every ``event_type`` event notify-worker staged, oldest first."""
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(NotifyOutbox)
                    .where(col(NotifyOutbox.type) == event_type)
                    .order_by(col(NotifyOutbox.occurred_at))
                )
            ).scalars()
            return [dict(row.data) for row in rows]

    async def endpoint(self, endpoint_id: uuid.UUID | None = None) -> dict[str, Any]:
        """The endpoint as agreement-api's API shows it to an admin."""
        response = await self.agreement.get(
            f"/api/v1/webhooks/{endpoint_id or self.endpoint_id}", headers=auth("admin")
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def enable(self, endpoint_id: uuid.UUID | None = None) -> None:
        """A person turns the endpoint back on in agreement-api."""
        response = await self.agreement.post(
            f"/api/v1/webhooks/{endpoint_id or self.endpoint_id}/enable", headers=auth("admin")
        )
        assert response.status_code == 200, response.text

    async def add_endpoint(self, url: str | None = None) -> uuid.UUID:
        """A second endpoint of the organization (signed with the receiver's secret is not needed)."""
        response = await self.agreement.post(
            f"/api/v1/organizations/{self.organization_id}/webhooks",
            json={"url": url or self.receiver.url, "key_kind": "hmac"},
            headers=auth("admin"),
        )
        assert response.status_code == 201, response.text
        return uuid.UUID(response.json()["id"])

    async def aclose(self) -> None:
        for sender in self.senders:
            await sender.aclose()


@contextlib.asynccontextmanager
async def start_setup(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    receiver: Receiver,
    *,
    organization_id: uuid.UUID | None = None,
    facts: Any = None,
) -> AsyncIterator[Setup]:
    """agreement-api (allowing local http receivers) with an organization (a new Halden kommune
    unless ``organization_id`` names one) whose one endpoint is ``receiver``; the receiver verifies
    with that endpoint's secret. ``facts`` answers for case-api (:class:`FixedFacts` by default)."""
    from agreement_api.main import create_app

    settings = test_settings(
        "agreement_api.config", database_url, allow_private_webhook_urls=True, allow_http_webhooks=True
    )
    async with running(create_app(settings), sessionmaker=sessionmaker) as agreement:
        if organization_id is None:
            response = await agreement.post(
                "/api/v1/organizations",
                json={"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"},
                headers=auth("admin"),
            )
            assert response.status_code == 201, response.text
            organization_id = uuid.UUID(response.json()["id"])
        response = await agreement.post(
            f"/api/v1/organizations/{organization_id}/webhooks",
            json={"url": receiver.url, "key_kind": "hmac"},
            headers=auth("admin"),
        )
        assert response.status_code == 201, response.text
        created = response.json()
        receiver.secret = created["key"]["secret"]
        token = mint_token(role="service", subject="notify-worker")
        ready = Setup(
            sessionmaker=sessionmaker,
            agreement=agreement,
            agreements=AgreementClient("http://agreement-api", token, http=agreement),
            receiver=receiver,
            organization_id=organization_id,
            endpoint_id=uuid.UUID(created["id"]),
            facts=facts or FixedFacts(),
        )
        try:
            yield ready
        finally:
            await ready.aclose()


@contextlib.asynccontextmanager
async def ops_client(database_url: str, setup: Setup) -> AsyncIterator[httpx.AsyncClient]:
    """notify-worker's HTTP surface on the test transaction, its delivery loop off, asking the
    test's agreement-api about endpoints."""
    app = worker_app(test_settings("notify_worker.config", database_url, dispatch_enabled=False))
    async with running(app, sessionmaker=setup.sessionmaker) as client:
        own: Ports = app.state.ports
        await own.agreements.aclose()
        app.state.ports = Ports(agreements=setup.agreements, cases=own.cases)
        yield client
