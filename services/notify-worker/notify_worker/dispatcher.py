"""The delivery loop: claim due notices, deliver them to their recipient's webhook endpoints, mark
them (docs/notices.md, "Delivery").

One round (:meth:`Dispatcher.run_once`):

1. claims of notices that never got deliveries and are older than the claim timeout return to
   ``scheduled``;
2. due notices are claimed and get one ``notify_delivery`` per active endpoint of the recipient that
   takes the notice's type (each with its own ``webhook_id``, kept for every retry);
3. due pending deliveries are taken one by one (``FOR UPDATE SKIP LOCKED``), leased by moving
   ``next_attempt_at`` past the longest the attempt can take, committed, sent, and the attempt is
   recorded in a second transaction. A worker that dies mid-attempt leaves the delivery pending;
   when the lease runs out it is sent again with the same ``webhook_id``;
4. claimed notices whose deliveries have all ended are marked: ``delivered`` when at least one
   succeeded, else ``dead``. This runs after the attempt's commit, in its own transaction.

Any number of workers may run side by side.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker.claims import claim_due, release_stale_claims
from notify_worker.clients import EndpointPort, UpstreamError
from notify_worker.delivery import Outcome, WebhookSender, encode, event_type_for, payload
from notify_worker.models import DeliveryState, NoticeState, NotifyAttempt, NotifyDelivery, NotifyNotice
from shared.db import unit_of_work, utcnow

log = structlog.get_logger("notify_worker.dispatcher")

MAX_RETRY_AFTER = timedelta(days=1)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class _Leased:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    webhook_id: str
    body: bytes


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        endpoints: EndpointPort,
        sender: WebhookSender,
        *,
        case_api_public_url: str,
        retry_schedule: Sequence[float],
        claim_timeout: timedelta,
        lease: timedelta,
        batch_size: int = 20,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.endpoints = endpoints
        self.sender = sender
        self.case_api_public_url = case_api_public_url
        self.retry_schedule = list(retry_schedule)
        self.claim_timeout = claim_timeout
        self.lease = lease
        self.batch_size = batch_size
        self.worker_id = worker_id or worker_name()
        self.rng = rng or random.Random()
        self._stop = asyncio.Event()

    # --- the loop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the attempt in flight, then leave the loop."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self, interval: float) -> None:
        log.info("dispatcher.started", worker_id=self.worker_id)
        while not self.stopping:
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("dispatcher.round_failed")
                worked = 0
            if not worked and not self.stopping:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=interval)
        log.info("dispatcher.stopped", worker_id=self.worker_id)

    async def run_once(self, now: datetime | None = None) -> int:
        """One round; how many notices and attempts it handled (0: nothing was due)."""
        now = now or utcnow()
        async with unit_of_work(self.sessionmaker) as session:
            await release_stale_claims(session, timeout=self.claim_timeout, now=now)
        worked = await self.plan(now)
        for _ in range(self.batch_size):
            if self.stopping or not await self.attempt_next(now):
                break
            worked += 1
        await self.finish_notices(now)
        return worked

    # --- 2. notices become deliveries -----------------------------------------------------------

    async def plan(self, now: datetime) -> int:
        async with unit_of_work(self.sessionmaker) as session:
            claimed = [
                (notice.id, notice.recipient_organization_id, event_type_for(notice))
                for notice in await claim_due(
                    session, worker_id=self.worker_id, now=now, limit=self.batch_size
                )
            ]
        for notice_id, organization_id, event_type in claimed:
            try:
                endpoints = [
                    e for e in await self.endpoints.endpoints_for(organization_id) if e.wants(event_type)
                ]
            except (UpstreamError, httpx.HTTPError, ValueError) as exc:
                # The claim stays; it returns to scheduled after the claim timeout.
                log.warning("dispatcher.endpoints_unavailable", notice_id=str(notice_id), error=str(exc))
                continue
            async with unit_of_work(self.sessionmaker) as session:
                if not endpoints:
                    notice = await session.get(NotifyNotice, notice_id, with_for_update=True)
                    if notice is not None and notice.state is NoticeState.CLAIMED:
                        notice.state = NoticeState.DEAD
                        notice.updated_at = now
                    log.warning(
                        "dispatcher.no_endpoint",
                        notice_id=str(notice_id),
                        organization_id=str(organization_id),
                    )
                    continue
                await session.execute(
                    insert(NotifyDelivery)
                    .values(
                        [
                            {
                                "id": uuid.uuid4(),
                                "notice_id": notice_id,
                                "endpoint_id": endpoint.id,
                                "organization_id": endpoint.organization_id,
                                "url": endpoint.url,
                                "webhook_id": new_webhook_id(),
                                "state": DeliveryState.PENDING,
                                "attempts": 0,
                                "next_attempt_at": now,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for endpoint in endpoints
                        ]
                    )
                    .on_conflict_do_nothing(index_elements=["notice_id", "endpoint_id"])
                )
        return len(claimed)

    # --- 3. attempts ----------------------------------------------------------------------------

    async def _lease(self, now: datetime) -> _Leased | None:
        async with unit_of_work(self.sessionmaker) as session:
            row = (
                await session.execute(
                    select(NotifyDelivery, NotifyNotice)
                    .join(NotifyNotice, col(NotifyNotice.id) == col(NotifyDelivery.notice_id))
                    .where(
                        col(NotifyDelivery.state) == DeliveryState.PENDING,
                        col(NotifyDelivery.next_attempt_at) <= now,
                    )
                    .order_by(col(NotifyDelivery.next_attempt_at), col(NotifyDelivery.id))
                    .limit(1)
                    .with_for_update(of=NotifyDelivery, skip_locked=True)
                )
            ).first()
            if row is None:
                return None
            delivery, notice = row
            # From the real clock: a round's earlier attempts may have taken a while.
            moment = max(now, utcnow())
            delivery.next_attempt_at = moment + self.lease
            delivery.updated_at = moment
            return _Leased(
                delivery_id=delivery.id,
                endpoint_id=delivery.endpoint_id,
                url=delivery.url,
                webhook_id=delivery.webhook_id,
                body=encode(payload(notice, case_api_public_url=self.case_api_public_url)),
            )

    async def attempt_next(self, now: datetime) -> bool:
        """Send the earliest due delivery and record the attempt; False when none is due."""
        leased = await self._lease(now)
        if leased is None:
            return False
        outcome = await self._send(leased)
        await self._record(leased, outcome, now)
        return True

    async def _send(self, leased: _Leased) -> Outcome:
        try:
            keys = await self.endpoints.signing_keys(leased.endpoint_id, utcnow())
        except (UpstreamError, httpx.HTTPError, ValueError) as exc:
            log.warning(
                "dispatcher.signing_keys_unavailable", endpoint_id=str(leased.endpoint_id), error=str(exc)
            )
            return Outcome(None, 0, "signing_keys_unavailable")
        if not keys:
            return Outcome(None, 0, "no_signing_key")
        return await self.sender.send(leased.url, leased.webhook_id, leased.body, keys)

    def _backoff(self, attempts: int) -> timedelta | None:
        """The pause after the ``attempts``-th failed attempt (±20 % jitter); None: give up."""
        if attempts > len(self.retry_schedule):
            return None
        return timedelta(seconds=self.retry_schedule[attempts - 1] * self.rng.uniform(0.8, 1.2))

    async def _record(self, leased: _Leased, outcome: Outcome, now: datetime) -> None:
        async with unit_of_work(self.sessionmaker) as session:
            delivery = await session.get(NotifyDelivery, leased.delivery_id, with_for_update=True)
            if delivery is None or delivery.state is not DeliveryState.PENDING:
                return
            at = max(utcnow(), now)
            session.add(
                NotifyAttempt(
                    delivery_id=delivery.id,
                    at=at,
                    status_code=outcome.status_code,
                    duration_ms=outcome.duration_ms,
                    error_class=outcome.error_class,
                )
            )
            delivery.attempts += 1
            delivery.last_status = outcome.status_code
            delivery.last_error_class = outcome.error_class
            delivery.updated_at = at
            if outcome.succeeded:
                delivery.state = DeliveryState.SUCCEEDED
            elif outcome.status_code == 410:
                delivery.state = DeliveryState.FAILED_PERMANENTLY
            else:
                pause = self._backoff(delivery.attempts)
                if pause is None:
                    delivery.state = DeliveryState.DEAD
                else:
                    if outcome.retry_after_seconds is not None:
                        pause = min(timedelta(seconds=outcome.retry_after_seconds), MAX_RETRY_AFTER)
                    delivery.next_attempt_at = at + pause
            log.info(
                "dispatcher.attempt",
                delivery_id=str(delivery.id),
                webhook_id=delivery.webhook_id,
                status_code=outcome.status_code,
                error_class=outcome.error_class,
                state=delivery.state.value,
                attempts=delivery.attempts,
            )

    # --- 4. notices end -------------------------------------------------------------------------

    async def finish_notices(self, now: datetime) -> int:
        """Mark claimed notices whose deliveries have all ended; how many were marked."""
        async with unit_of_work(self.sessionmaker) as session:
            notices = list(
                (
                    await session.execute(
                        select(NotifyNotice)
                        .where(
                            col(NotifyNotice.state) == NoticeState.CLAIMED,
                            exists().where(col(NotifyDelivery.notice_id) == col(NotifyNotice.id)),
                            ~exists().where(
                                col(NotifyDelivery.notice_id) == col(NotifyNotice.id),
                                col(NotifyDelivery.state) == DeliveryState.PENDING,
                            ),
                        )
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            for notice in notices:
                succeeded = await session.scalar(
                    select(
                        exists().where(
                            col(NotifyDelivery.notice_id) == notice.id,
                            col(NotifyDelivery.state) == DeliveryState.SUCCEEDED,
                        )
                    )
                )
                notice.state = NoticeState.DELIVERED if succeeded else NoticeState.DEAD
                notice.updated_at = now
                log.info("dispatcher.notice_ended", notice_id=str(notice.id), state=notice.state.value)
            return len(notices)
