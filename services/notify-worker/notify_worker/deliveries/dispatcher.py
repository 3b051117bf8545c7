"""The delivery loop: claim due notices, deliver them to their recipient's webhook endpoints, mark
them (docs/notices.md, "Delivery").

One round (:meth:`Dispatcher.run_once`):

1. claims of notices that never got deliveries and are older than the claim timeout return to
   ``scheduled``;
2. due notices are claimed; the recipients' endpoints (agreement-api, side by side) and the
   notice facts (case-api: the release date's certainty and the coordinator's contact; one
   ``GET /api/v1/notice-facts`` for the round's cases) are fetched, and in one transaction for the round the facts are stored on each notice and one
   ``notify_delivery`` is created per active endpoint that takes the notice's type (each with its
   own ``webhook_id``, kept for every retry; one INSERT for the round).
   Either service unreachable: the claim is left and returns to ``scheduled`` after the timeout;
3. endpoints the worker decided to disable but could not (agreement-api was down) are disabled;
4. due pending deliveries are attempted through a pipeline of ``concurrency`` slots: deliveries
   are leased into the free slots in one transaction (``FOR UPDATE SKIP LOCKED``, at most
   ``endpoint_concurrency`` in flight per endpoint; deliveries of an endpoint at its limit are left
   for later), by moving ``next_attempt_at`` past the longest an attempt can take, committed, and
   sent side by side (each once) to the endpoint's URL as agreement-api lists it now (the
   delivery's ``url`` becomes the URL of its latest attempt). Each attempt that ends frees its slot at once; the attempts that
   ended together are recorded together in one transaction with the endpoints' health
   (notify_worker.deliveries.health), each in a transaction of its own when that one fails, and
   the free slots are leased again. So a slow or failing receiver holds at most
   ``endpoint_concurrency`` slots and delays nobody else. A worker that dies mid-attempt leaves the
   delivery pending; when the lease runs out it is sent again with the same ``webhook_id``. A 410,
   a URL the worker's policy refuses (nothing is sent: notify_worker.deliveries.sender), or
   failures for too long, disable the endpoint after the commit;
5. claimed notices whose deliveries have all ended are marked: ``delivered`` when at least one
   succeeded (``notice.delivered.v1``, with the receipt deadline), else ``dead``
   (``notice.dead.v1``). This runs after the attempt's commit, in its own transaction.

:meth:`Dispatcher.run_once` returns once its attempts are recorded. A round of the loop
(:meth:`Dispatcher.run`) waits for the attempts it started at most ``ROUND_WAIT_S``: slow ones stay
in flight into the next rounds and are recorded as they end (an idle loop wakes for them); on
:meth:`Dispatcher.stop` the attempts in flight are finished and recorded before the loop returns.

A delivery's ``updated_at`` moves only when its state does (created, ended, redelivered), so while
it is pending it says when its current run of attempts began: after an operator's redelivery the
retry schedule starts again from the attempts made since then, while ``attempts`` keeps counting.

Any number of workers may run side by side.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

import httpx
import structlog
from sqlalchemy import bindparam, exists, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker import metrics
from notify_worker.clients import (
    EndpointPort,
    FactsPort,
    NoticeFacts,
    SigningKey,
    UpstreamError,
    WebhookEndpoint,
)
from notify_worker.deliveries import health
from notify_worker.deliveries.claims import NOTICE_DATE, claim_due, release_stale_claims
from notify_worker.deliveries.models import LIVE_DELIVERY, DeliveryState, NotifyAttempt, NotifyDelivery
from notify_worker.deliveries.sender import Outcome, WebhookSender, encode, event_type_for, payload
from notify_worker.notices import told
from notify_worker.notices.events import emit_all, emit_notice, notice_event
from notify_worker.notices.models import NoticeState, NotifyNotice
from notify_worker.receipts.escalation import escalate_overdue
from shared.contracts import events as contracts
from shared.db import insert_ignoring_conflicts, table_of, unit_of_work, utcnow

log = structlog.get_logger("notify_worker.dispatcher")

MAX_RETRY_AFTER = timedelta(days=1)

# How long a round of the loop waits in all for the attempts it started to end. Those that have not
# ended by then (a slow receiver) stay in flight and are recorded by a later round as they end, so a
# slow receiver keeps the round from planning and sending the others' notices for no longer than this.
ROUND_WAIT_S = 0.25

# notice.dead.v1 reasons
NO_ENDPOINT = "no_endpoint"  # the recipient has no active endpoint that takes the notice's type
DELIVERY_FAILED = "delivery_failed"  # every delivery ended without a 2xx


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


@dataclass(frozen=True)
class _Leased:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    url: str  # the delivery's URL when leased; the endpoint's current URL once its attempt starts
    webhook_id: str
    body: bytes


@dataclass(frozen=True)
class _Recorded:
    """What recording an attempt came to, for the steps after its commit."""

    endpoint_id: uuid.UUID
    state: DeliveryState | None  # None: the delivery had ended while the attempt was in flight
    error_class: str | None
    disable_reason: str | None
    delivery_id: uuid.UUID | None = None
    webhook_id: str | None = None
    status_code: int | None = None
    attempts: int = 0
    refusal: str | None = None  # why the URL was refused at send time

    def log(self) -> None:
        """The attempt's log line, once its record is committed (not again after a fallback)."""
        if self.refusal is not None:
            log.warning(
                "dispatcher.url_refused",
                delivery_id=str(self.delivery_id),
                endpoint_id=str(self.endpoint_id),
                reason=self.refusal,
            )
        if self.state is None:
            log.info("dispatcher.attempt_after_end", delivery_id=str(self.delivery_id))
            return
        log.info(
            "dispatcher.attempt",
            delivery_id=str(self.delivery_id),
            webhook_id=self.webhook_id,
            status_code=self.status_code,
            error_class=self.error_class,
            state=self.state.value,
            attempts=self.attempts,
        )


class _Locked(NamedTuple):
    """A delivery's row as the record transaction locked it (the columns recording reads)."""

    id: uuid.UUID
    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    webhook_id: str
    state: DeliveryState
    attempts: int
    redeliveries: int
    last_status: int | None
    last_error_class: str | None
    next_attempt_at: datetime
    ended_at: datetime | None
    updated_at: datetime


_LOCK_DELIVERIES = (
    select(*(table_of(NotifyDelivery).c[name] for name in _Locked._fields))
    .where(col(NotifyDelivery.id).in_(bindparam("ids", expanding=True)))
    .order_by(col(NotifyDelivery.id))
    .with_for_update()
)
_DELIVERY = table_of(NotifyDelivery).c
_UPDATE_DELIVERY = (
    update(table_of(NotifyDelivery))
    .where(_DELIVERY.id == bindparam("b_id"))
    .values(
        {
            name: bindparam(name)
            for name in (
                "url",
                "state",
                "attempts",
                "last_status",
                "last_error_class",
                "next_attempt_at",
                "ended_at",
                "updated_at",
            )
        }
    )
)


_NOTICE = table_of(NotifyNotice).c
# Due deliveries with the notice columns their body is built from (sender.NoticeView), earliest
# first, locked (the deliveries only) for the lease; _DUE_LEASE_FULL leaves out full endpoints.
_DUE_LEASE = (
    select(
        _DELIVERY.id.label("delivery_id"),
        _DELIVERY.endpoint_id,
        _DELIVERY.organization_id,
        _DELIVERY.url,
        _DELIVERY.webhook_id,
        *NOTICE_DATE,
        _NOTICE.release_date_certainty,
        _NOTICE.coordinator_contact,
    )
    .join_from(table_of(NotifyDelivery), table_of(NotifyNotice), _NOTICE.id == _DELIVERY.notice_id)
    .where(_DELIVERY.state == DeliveryState.PENDING, _DELIVERY.next_attempt_at <= bindparam("now"))
    .order_by(_DELIVERY.next_attempt_at, _DELIVERY.id)
    .limit(bindparam("wanted"))
    .with_for_update(of=table_of(NotifyDelivery), skip_locked=True)
)
_DUE_LEASE_FULL = _DUE_LEASE.where(_DELIVERY.endpoint_id.not_in(bindparam("full", expanding=True)))
_LEASE_UNTIL = (
    update(table_of(NotifyDelivery))
    .where(_DELIVERY.id.in_(bindparam("ids", expanding=True)))
    .values(next_attempt_at=bindparam("until"))
)


# The round's claims still this worker's, locked for planning.
_MY_CLAIMS = (
    select(*NOTICE_DATE)
    .where(
        _NOTICE.id.in_(bindparam("ids", expanding=True)),
        _NOTICE.state == NoticeState.CLAIMED,
        _NOTICE.claimed_by == bindparam("worker"),
    )
    .order_by(_NOTICE.id)
    .with_for_update()
)
_STORE_FACTS = (
    update(table_of(NotifyNotice))
    .where(_NOTICE.id == bindparam("b_id"))
    .values(
        release_date_certainty=bindparam("certainty"),
        coordinator_contact=bindparam("contact"),
        updated_at=bindparam("now"),
        version=_NOTICE.version + 1,
    )
)
_NO_ENDPOINT = (
    update(table_of(NotifyNotice))
    .where(_NOTICE.id.in_(bindparam("ids", expanding=True)))
    .values(
        state=NoticeState.DEAD,
        dead_at=bindparam("now"),
        updated_at=bindparam("now"),
        version=_NOTICE.version + 1,
    )
)
# Claimed notices whose deliveries have all ended (none pending, one not superseded), locked.
_ENDED_NOTICES = (
    select(
        *NOTICE_DATE,
        _NOTICE.receipt_deadline_days,
        _NOTICE.delivered_at,
        _NOTICE.receipt_due_at,
        _NOTICE.dead_at,
    )
    .where(
        _NOTICE.state == NoticeState.CLAIMED,
        exists().where(_DELIVERY.notice_id == _NOTICE.id, _DELIVERY.state != DeliveryState.SUPERSEDED),
        ~exists().where(_DELIVERY.notice_id == _NOTICE.id, _DELIVERY.state == DeliveryState.PENDING),
    )
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_ENDED_DELIVERIES = select(
    _DELIVERY.notice_id, _DELIVERY.state, _DELIVERY.ended_at, _DELIVERY.last_error_class
).where(
    _DELIVERY.notice_id.in_(bindparam("ids", expanding=True)), _DELIVERY.state != DeliveryState.SUPERSEDED
)
_END_NOTICE = (
    update(table_of(NotifyNotice))
    .where(_NOTICE.id == bindparam("b_id"))
    .values(
        {
            **{
                name: bindparam(name)
                for name in ("state", "delivered_at", "receipt_due_at", "dead_at", "updated_at")
            },
            "version": _NOTICE.version + 1,
        }
    )
)


def stored_facts(facts: NoticeFacts | None, release_date: date) -> tuple[str | None, dict[str, Any] | None]:
    """What a notice keeps of case-api's notice facts: the certainty (only when it is about the
    date the notice announces) and the coordinator's contact."""
    if facts is None:
        return None, None
    same_date = facts.effective_release_date == release_date
    certainty = facts.release_date_certainty if same_date else None
    contact = facts.coordinator.model_dump(mode="json") if facts.coordinator is not None else None
    return certainty, contact


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        endpoints: EndpointPort,
        sender: WebhookSender,
        *,
        facts: FactsPort,
        case_api_public_url: str,
        retry_schedule: Sequence[float],
        claim_timeout: timedelta,
        lease: timedelta,
        failure_period: timedelta | None = None,
        escalation_interval: timedelta | None = None,
        batch_size: int = 20,
        concurrency: int = 16,
        endpoint_concurrency: int | None = None,
        worker_id: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.endpoints = endpoints
        self.facts = facts
        self.sender = sender
        self.case_api_public_url = case_api_public_url
        self.retry_schedule = list(retry_schedule)
        self.claim_timeout = claim_timeout
        self.lease = lease
        self.failure_period = failure_period
        self.escalation_interval = escalation_interval
        self._escalated_at: datetime | None = None
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        # Attempts one endpoint may have in flight in this worker; None: only ``concurrency``.
        self.endpoint_concurrency = None if endpoint_concurrency is None else max(1, endpoint_concurrency)
        self.worker_id = worker_id or worker_name()
        self.rng = rng or random.Random()
        self._stop = asyncio.Event()
        self._flight: dict[asyncio.Task[Outcome], _Leased] = {}  # attempts in flight

    # --- the loop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the attempts in flight, then leave the loop."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self, interval: float) -> None:
        log.info("dispatcher.started", worker_id=self.worker_id)
        try:
            while not self.stopping:
                try:
                    worked = await self.run_once(wait=ROUND_WAIT_S)
                except Exception:
                    log.exception("dispatcher.round_failed")
                    worked = 0
                if not worked and not self.stopping:
                    await self._idle(interval)
            await self._settle()
        finally:
            # Cut short (the shutdown grace ran out): the leases run out and the deliveries are sent
            # again with the same webhook-id.
            for task in self._flight:
                task.cancel()
            self._flight.clear()
        log.info("dispatcher.stopped", worker_id=self.worker_id)

    async def _idle(self, interval: float) -> None:
        """Nothing to do: wait for the interval, the stop, or an attempt in flight to end."""
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait(
                [stopped, *self._flight], timeout=interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()

    async def _settle(self) -> None:
        """On stop: the attempts in flight end and are recorded, and their notices are marked."""
        if not self._flight:
            return
        now = utcnow()
        try:
            await self.attempt_due(now, 0)
            await self.finish_notices(now)
        except Exception:
            log.exception("dispatcher.round_failed")

    async def run_once(self, now: datetime | None = None, *, wait: float | None = None) -> int:
        """One round; how many notices and attempts it handled (0: nothing was due).

        It returns once every attempt in flight is recorded, unless ``wait`` bounds how long it waits
        for them (the loop's way, see :meth:`attempt_due`)."""
        now = now or utcnow()
        async with unit_of_work(self.sessionmaker) as session:
            await release_stale_claims(session, timeout=self.claim_timeout, now=now)
        worked = await self.plan(now)
        await self._record_ended(now)
        await self.retry_disables(now)
        worked += await self.attempt_due(now, self.batch_size, wait=wait)
        await self.finish_notices(now)
        worked += await self.escalate(now)
        return worked

    # --- 5. escalation --------------------------------------------------------------------------

    async def escalate(self, now: datetime) -> int:
        """Every ``escalation_interval`` (when set): escalate notices past their receipt deadline
        without a final answer, and dead ones (``notify_worker.receipts.escalation``)."""
        if self.escalation_interval is None:
            return 0
        if self._escalated_at is not None and now - self._escalated_at < self.escalation_interval:
            return 0
        self._escalated_at = now
        escalated = 0
        while not self.stopping:
            done = await escalate_overdue(self.sessionmaker, now=now, limit=self.batch_size)
            escalated += done
            if done < self.batch_size:
                break
        return escalated

    # --- 2. notices become deliveries -----------------------------------------------------------

    async def plan(self, now: datetime) -> int:
        async with unit_of_work(self.sessionmaker) as session:
            claimed = [
                (notice.id, notice.case_id, notice.recipient_organization_id, event_type_for(notice))
                for notice in await claim_due(
                    session, worker_id=self.worker_id, now=now, limit=self.batch_size
                )
            ]
        if not claimed:
            return 0
        # Each recipient's endpoints and each case's facts are asked once a round: a round's notices
        # mostly share a few recipients, and a case's notices come due together.
        # An answer may come from the endpoint cache: it says "active" as of up to max_age ago.
        asked_at = max(now, utcnow()) - getattr(self.endpoints, "max_age", timedelta(0))
        listed = await _ask(
            self.endpoints.endpoints_for,
            {organization for _, _, organization, _ in claimed},
            self.concurrency,
        )
        wanted: dict[uuid.UUID, list[WebhookEndpoint]] = {}
        for notice_id, _case_id, organization_id, event_type in claimed:
            endpoints = listed[organization_id]
            if not isinstance(endpoints, Exception):
                wanted[notice_id] = [e for e in endpoints if e.wants(event_type)]
        facts = await self._facts({case_id for notice_id, case_id, _, _ in claimed if wanted.get(notice_id)})
        active = [
            e.id for found in listed.values() if isinstance(found, list) for e in found if e.state == "active"
        ]
        async with unit_of_work(self.sessionmaker) as session:
            await health.seen_active(session, active, asked_at=asked_at)
        ready: dict[uuid.UUID, tuple[list[WebhookEndpoint], NoticeFacts | None]] = {}
        for notice_id, case_id, _organization_id, _event_type in claimed:
            endpoints_of = wanted.get(notice_id)
            if endpoints_of is None or (endpoints_of and facts is None):
                # The claim stays; it returns to scheduled after the claim timeout.
                log.warning("dispatcher.upstream_unavailable", notice_id=str(notice_id))
                continue
            # A case missing from the answer is unknown to case-api: delivered without its facts.
            ready[notice_id] = (endpoints_of, facts.get(case_id) if facts is not None else None)
        if ready:
            # One transaction and one INSERT for the round: every statement is local to the
            # database, so a failure leaves all these claims to the claim timeout, as before.
            async with unit_of_work(self.sessionmaker) as session:
                await self._plan_all(session, ready, now)
        return len(claimed)

    async def _facts(self, case_ids: set[uuid.UUID]) -> dict[uuid.UUID, NoticeFacts] | None:
        """The round's cases' facts in one question (chunks of 200); None when case-api could not
        answer, which leaves the claims of notices that have endpoints."""
        if not case_ids:
            return {}
        try:
            return await self.facts.notice_facts_many(case_ids)
        except (UpstreamError, httpx.HTTPError, ValueError) as exc:
            log.warning("dispatcher.upstream_unavailable", key="notice_facts", error=str(exc))
            return None

    async def _plan_all(
        self,
        session: AsyncSession,
        ready: dict[uuid.UUID, tuple[list[WebhookEndpoint], NoticeFacts | None]],
        now: datetime,
    ) -> None:
        ids = list(ready)
        # Otherwise the claim went stale and another worker has it.
        notices = (await session.execute(_MY_CLAIMS, {"ids": ids, "worker": self.worker_id})).all()
        planned = set(
            (
                await session.execute(
                    select(col(NotifyDelivery.notice_id))
                    .where(
                        col(NotifyDelivery.notice_id).in_(ids),
                        col(NotifyDelivery.state) != DeliveryState.SUPERSEDED,
                    )
                    .distinct()
                )
            )
            .scalars()
            .all()
        )
        rows: list[dict[str, Any]] = []
        facts_of: list[dict[str, Any]] = []
        dead: list[uuid.UUID] = []
        for notice in notices:
            if notice.id in planned:
                continue
            endpoints, facts = ready[notice.id]
            if not endpoints:
                dead.append(notice.id)
                emit_notice(session, contracts.NoticeDead, notice, reason=NO_ENDPOINT, error_classes=[])
                log.warning(
                    "dispatcher.no_endpoint",
                    notice_id=str(notice.id),
                    organization_id=str(notice.recipient_organization_id),
                )
                continue
            if facts is None:
                log.warning("dispatcher.case_unknown_to_case_api", notice_id=str(notice.id))
            # Stored with the deliveries, so every attempt sends the same bytes.
            certainty, contact = stored_facts(facts, notice.release_date)
            facts_of.append({"b_id": notice.id, "certainty": certainty, "contact": contact, "now": now})
            rows.extend(
                {
                    "id": uuid.uuid4(),
                    "notice_id": notice.id,
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
            )
        if dead:
            await session.execute(_NO_ENDPOINT, {"ids": dead, "now": now})
        if facts_of:
            await session.execute(_STORE_FACTS, facts_of)
        if rows:
            await session.execute(
                insert_ignoring_conflicts(
                    session,
                    table_of(NotifyDelivery),
                    None,
                    key=["notice_id", "endpoint_id"],
                    where=LIVE_DELIVERY,
                ),
                rows,
            )

    async def retry_disables(self, now: datetime) -> int:
        """Disable the endpoints whose disabling agreement-api could not take before; how many."""
        async with self.sessionmaker() as session:
            due = await health.pending_disables(
                session, failure_period=self.failure_period, limit=self.batch_size
            )
        done = 0
        for item in due:
            done += await health.disable(
                self.sessionmaker, self.endpoints, endpoint_id=item.endpoint_id, reason=item.reason, now=now
            )
            await self._record_ended(now)  # agreement-api may be slow: no record waits for all of them
        return done

    # --- 3. attempts ----------------------------------------------------------------------------

    async def _lease(
        self, now: datetime, limit: int, *, busy: Mapping[uuid.UUID, int] | None = None
    ) -> list[_Leased]:
        """Lease up to ``limit`` due deliveries in one transaction, earliest first, and no more of
        an endpoint's than ``endpoint_concurrency`` less its attempts in flight (``busy``): the
        deliveries of an endpoint at its limit stay due for a later lease."""
        cap = self.endpoint_concurrency
        taken = collections.Counter(busy or {})
        full = {endpoint_id for endpoint_id, n in taken.items() if cap is not None and n >= cap}
        async with unit_of_work(self.sessionmaker) as session:
            # From the real clock: a round's earlier attempts may have taken a while. updated_at
            # stays: it marks the start of the delivery's current run of attempts.
            until = max(now, utcnow()) + self.lease
            rows: list[Any] = []
            while len(rows) < limit:
                wanted = limit - len(rows)
                found = (
                    await session.execute(
                        _DUE_LEASE_FULL if full else _DUE_LEASE,
                        {"now": now, "wanted": wanted, "full": list(full)},
                    )
                ).all()
                taken_now: list[uuid.UUID] = []
                for row in found:
                    if row.endpoint_id in full:
                        continue  # its endpoint filled up in this lease: left due (locked till the commit)
                    rows.append(row)
                    taken_now.append(row.delivery_id)
                    taken[row.endpoint_id] += 1
                    if cap is not None and taken[row.endpoint_id] >= cap:
                        full.add(row.endpoint_id)
                if taken_now:
                    # The leased ones are no longer due: a second pass does not find them again.
                    await session.execute(_LEASE_UNTIL, {"ids": taken_now, "until": until})
                if len(found) < wanted or len(rows) == limit:
                    break  # nothing more is due, or enough was taken
                # Some were left for their endpoint's limit: ask again without those endpoints.
            return [
                _Leased(
                    delivery_id=row.delivery_id,
                    endpoint_id=row.endpoint_id,
                    organization_id=row.organization_id,
                    url=row.url,
                    webhook_id=row.webhook_id,
                    body=encode(payload(row, case_api_public_url=self.case_api_public_url)),
                )
                for row in rows
            ]

    async def attempt_due(self, now: datetime, limit: int, *, wait: float | None = None) -> int:
        """Attempt up to ``limit`` due deliveries, each once, through ``concurrency`` slots with at
        most ``endpoint_concurrency`` attempts in flight per endpoint; how many were leased.

        A pipeline, not chunks: an attempt that ends frees its slot at once. The attempts that have
        ended are recorded together in one transaction (one commit instead of one each: most of
        what recording cost; each in a transaction of its own should that fail, so one that cannot
        be recorded loses no other's record: its lease runs out and it is sent again with the same
        webhook-id), then due deliveries are leased into the free slots, as long as ``limit`` allows.

        With ``wait`` None it returns when every attempt in flight has ended and is recorded (those
        that end once nothing more may be leased, together). Otherwise, the loop's way, it waits for
        attempts to end at most ``wait`` seconds in all, and only when it started some; what is
        still in flight then stays in flight, and a later call records it as it ends: a slow
        receiver holds its own slots, never the round."""
        leased = 0
        more = True  # the last lease may have left due deliveries behind
        deadline = None if wait is None else asyncio.get_running_loop().time() + wait
        while True:
            if await self._record_ended(now):
                more = True  # a slot is free, and an endpoint may be below its limit again
            wanted = 0 if self.stopping else min(self.concurrency - len(self._flight), limit - leased)
            if wanted > 0 and more:
                started = await self._start(now, wanted)
                leased += started
                more = started == wanted
                continue
            if not self._flight:
                return leased
            may_lease = leased < limit and not self.stopping
            if deadline is None:
                await asyncio.wait(
                    self._flight, return_when=asyncio.FIRST_COMPLETED if may_lease else asyncio.ALL_COMPLETED
                )
                continue
            left = deadline - asyncio.get_running_loop().time()
            if not (may_lease and leased) or left <= 0:
                return leased
            await asyncio.wait(self._flight, timeout=left, return_when=asyncio.FIRST_COMPLETED)

    async def _start(self, now: datetime, limit: int) -> int:
        """Lease up to ``limit`` due deliveries into free slots and start their attempts (the keys
        valid now and the endpoints as they are now are asked first, one question per endpoint and
        per organization); how many were started."""
        leased = await self._lease(now, limit, busy=self._busy())
        if not leased:
            return 0
        at = utcnow()
        # One after the other: no more than ``concurrency`` questions to agreement-api at once.
        keys = await _ask(
            lambda endpoint_id: self.endpoints.signing_keys(endpoint_id, at),
            {one.endpoint_id for one in leased},
            self.concurrency,
        )
        listed = await _ask(
            self.endpoints.endpoints_for, {one.organization_id for one in leased}, self.concurrency
        )
        for taken in leased:
            endpoint = _endpoint_of(taken, listed[taken.organization_id])
            # Every attempt, a retry too, goes where the endpoint points now.
            one = taken if isinstance(endpoint, Exception) else dataclasses.replace(taken, url=endpoint.url)
            self._flight[asyncio.create_task(self._send(one, endpoint, keys[one.endpoint_id]))] = one
        return len(leased)

    def _busy(self) -> collections.Counter[uuid.UUID]:
        """Attempts in flight per endpoint."""
        return collections.Counter(one.endpoint_id for one in self._flight.values())

    async def _record_ended(self, now: datetime) -> int:
        """Record the attempts that have ended, together; how many."""
        ended = [task for task in self._flight if task.done()]
        if ended:
            await self._finish(ended, now)
        return len(ended)

    async def _finish(self, ended: list[asyncio.Task[Outcome]], now: datetime) -> None:
        """Record ended attempts in one transaction, then disable the endpoints they condemned."""
        sent: list[tuple[_Leased, Outcome]] = []
        for task in ended:
            one = self._flight.pop(task)
            error = asyncio.CancelledError() if task.cancelled() else task.exception()
            if error is not None:
                self._not_recorded(one, error)
            else:
                sent.append((one, task.result()))
        recorded = await self._record(sent, now)
        disables: dict[uuid.UUID, str] = {}
        for result in recorded:
            if result.state is not None:
                metrics.count_outcome(result.state, result.error_class)
            if result.disable_reason is not None:
                disables.setdefault(result.endpoint_id, result.disable_reason)
        for endpoint_id, reason in disables.items():
            # After the commit, outside any transaction: agreement-api first, then the record.
            try:
                await health.disable(
                    self.sessionmaker, self.endpoints, endpoint_id=endpoint_id, reason=reason, now=now
                )
            except Exception as exc:  # the next round's retry_disables asks again
                log.error("dispatcher.disable_failed", endpoint_id=str(endpoint_id), error=repr(exc))

    @staticmethod
    def _not_recorded(leased: _Leased, error: BaseException) -> None:
        log.error("dispatcher.attempt_not_recorded", delivery_id=str(leased.delivery_id), error=repr(error))

    async def _send(
        self, leased: _Leased, endpoint: WebhookEndpoint | Exception, keys: list[SigningKey] | Exception
    ) -> Outcome:
        """One attempt: sign with every key and POST to ``leased.url`` (``endpoint`` and ``keys``:
        the endpoint as agreement-api lists it now and its keys, or why they could not be had)."""
        if isinstance(endpoint, Exception):
            log.warning(
                "dispatcher.endpoint_unavailable", endpoint_id=str(leased.endpoint_id), error=str(endpoint)
            )
            return Outcome(None, 0, health.ENDPOINT_UNAVAILABLE)
        if isinstance(keys, Exception):
            log.warning(
                "dispatcher.signing_keys_unavailable", endpoint_id=str(leased.endpoint_id), error=str(keys)
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

    async def _attempts_this_run(self, session: AsyncSession, delivery: _Locked) -> int:
        """Attempts already made since the delivery's current run began (see the module docstring)."""
        if delivery.redeliveries == 0:
            return delivery.attempts
        return int(
            await session.scalar(
                select(func.count()).where(
                    col(NotifyAttempt.delivery_id) == delivery.id,
                    col(NotifyAttempt.at) >= delivery.updated_at,
                )
            )
            or 0
        )

    async def _record(self, sent: list[tuple[_Leased, Outcome]], now: datetime) -> list[_Recorded]:
        """Record the chunk's attempts in one transaction; each in its own when that fails. What
        was recorded, its log lines written after the commit.

        Core statements over the chunk's rows, not ORM objects: the deliveries locked in one SELECT,
        the attempt rows in one INSERT, the deliveries' new states in one executemany UPDATE."""
        if not sent:
            return []
        # Endpoint order: the health rows are locked in the same order by every worker.
        ordered = sorted(sent, key=lambda pair: (pair[0].endpoint_id, pair[0].delivery_id))
        try:
            async with unit_of_work(self.sessionmaker) as session:
                locked = {
                    row.id: _Locked(*row)
                    for row in await session.execute(
                        _LOCK_DELIVERIES, {"ids": [one.delivery_id for one, _ in ordered]}
                    )
                }
                # Successes only: their health rows are written together after the loop. With a
                # failure among them, each attempt's health is written in turn, in endpoint order.
                together = all(
                    outcome.succeeded or not health.counts_for_health(outcome.error_class)
                    for _, outcome in ordered
                )
                recorded: list[_Recorded] = []
                attempts: list[dict[str, Any]] = []
                changes: list[dict[str, Any]] = []
                successes: list[tuple[uuid.UUID, uuid.UUID, datetime]] = []
                for one, outcome in ordered:
                    delivery = locked.get(one.delivery_id)
                    if delivery is None:
                        continue
                    result, attempt, change = await self._record_in(
                        session, delivery, one.url, outcome, now, health_now=not together
                    )
                    recorded.append(result)
                    attempts.append(attempt)
                    changes.append(change)
                    if together and outcome.succeeded:
                        successes.append((delivery.endpoint_id, delivery.organization_id, attempt["at"]))
                if successes:
                    await health.record_successes(session, successes)
                if attempts:
                    await session.execute(insert(table_of(NotifyAttempt)), attempts)
                    await session.execute(_UPDATE_DELIVERY, changes)
        except Exception as exc:
            if len(ordered) == 1:
                self._not_recorded(ordered[0][0], exc)
                return []
            log.warning("dispatcher.batch_record_failed", attempts=len(ordered), error=repr(exc))
            return await self._record_each(ordered, now)
        for result in recorded:
            result.log()
        return recorded

    async def _record_each(self, sent: list[tuple[_Leased, Outcome]], now: datetime) -> list[_Recorded]:
        """Each attempt in a transaction of its own, in order; one that fails is left to its lease."""
        recorded: list[_Recorded] = []
        for pair in sent:
            recorded += await self._record([pair], now)
        return recorded

    async def _record_in(
        self,
        session: AsyncSession,
        delivery: _Locked,
        url: str,
        outcome: Outcome,
        now: datetime,
        *,
        health_now: bool = True,
    ) -> tuple[_Recorded, dict[str, Any], dict[str, Any]]:
        """One attempt of the locked ``delivery`` to ``url``: what it came to, its attempt row, and
        the delivery's columns after it (its next state and, as its ``url``, the URL attempted).
        With ``health_now`` the endpoint's health is written here; otherwise the caller writes the
        chunk's successes together."""
        at = max(utcnow(), now)
        attempt = {
            "id": uuid.uuid4(),
            "delivery_id": delivery.id,
            "at": at,
            "status_code": outcome.status_code,
            "duration_ms": outcome.duration_ms,
            "error_class": outcome.error_class,
        }
        change: dict[str, Any] = {
            "b_id": delivery.id,
            "url": url,
            "state": delivery.state,
            "attempts": delivery.attempts,
            "last_status": delivery.last_status,
            "last_error_class": delivery.last_error_class,
            "next_attempt_at": delivery.next_attempt_at,
            "ended_at": delivery.ended_at,
            "updated_at": delivery.updated_at,
        }
        disable_reason = None
        if health_now and health.counts_for_health(outcome.error_class):
            disable_reason = await health.record_attempt(
                session,
                endpoint_id=delivery.endpoint_id,
                organization_id=delivery.organization_id,
                at=at,
                succeeded=outcome.succeeded,
                status_code=outcome.status_code,
                failure_period=self.failure_period,
                error_class=outcome.error_class,
            )
            # The health row is read back with populate_existing: what this attempt changed must
            # be in the database before the next attempt's health.
            await session.flush()
        if delivery.state is not DeliveryState.PENDING:
            # Ended while the attempt was in flight (its endpoint was disabled): the attempt is
            # part of the history all the same.
            result = _Recorded(
                delivery.endpoint_id,
                None,
                outcome.error_class,
                disable_reason,
                delivery_id=delivery.id,
                refusal=outcome.refusal,
            )
            return result, attempt, change
        earlier = await self._attempts_this_run(session, delivery)
        state = DeliveryState.PENDING
        if outcome.succeeded:
            state = DeliveryState.SUCCEEDED
        elif outcome.permanent:  # 410 Gone, or a URL refused at send time
            state = DeliveryState.FAILED_PERMANENTLY
        else:
            pause = self._backoff(earlier + 1)
            if pause is None:
                state = DeliveryState.DEAD
            else:
                if outcome.retry_after_seconds is not None:
                    pause = min(timedelta(seconds=outcome.retry_after_seconds), MAX_RETRY_AFTER)
                change["next_attempt_at"] = at + pause
        change.update(
            state=state,
            attempts=delivery.attempts + 1,
            last_status=outcome.status_code,
            last_error_class=outcome.error_class,
        )
        if state is not DeliveryState.PENDING:
            change.update(ended_at=at, updated_at=at)
        result = _Recorded(
            delivery.endpoint_id,
            state,
            outcome.error_class,
            disable_reason,
            delivery_id=delivery.id,
            webhook_id=delivery.webhook_id,
            status_code=outcome.status_code,
            attempts=delivery.attempts + 1,
            refusal=outcome.refusal,
        )
        return result, attempt, change

    # --- 4. notices end -------------------------------------------------------------------------

    async def finish_notices(self, now: datetime) -> int:
        """Mark claimed notices whose deliveries have all ended; how many were marked.

        Core statements over the batch: the notices locked in one SELECT, their deliveries read in
        one, their new states written by one executemany UPDATE, what their recipients were told
        by one upsert (notify_worker.notices.told)."""
        async with unit_of_work(self.sessionmaker) as session:
            notices = (await session.execute(_ENDED_NOTICES, {"limit": self.batch_size})).all()
            if not notices:
                return 0
            ended: dict[uuid.UUID, list[tuple[DeliveryState, datetime | None, str | None]]] = {}
            for notice_id, state, ended_at, error_class in await session.execute(
                _ENDED_DELIVERIES, {"ids": [notice.id for notice in notices]}
            ):
                ended.setdefault(notice_id, []).append((state, ended_at, error_class))
            changes: list[dict[str, Any]] = []
            events: list[tuple[contracts.EventPayload, str]] = []
            for notice in notices:
                change, event = self._end_notice(notice, ended[notice.id], now)
                changes.append(change)
                events.append(event)
            await session.execute(_END_NOTICE, changes)
            staged = await emit_all(session, events)
            # What the recipients were told, in the same transaction.
            await told.record_many(
                session,
                [
                    told.Told(notice, change["delivered_at"], event.id)
                    for notice, change, event in zip(notices, changes, staged, strict=True)
                    if change["state"] is NoticeState.DELIVERED
                ],
            )
            return len(notices)

    @staticmethod
    def _end_notice(
        notice: Any, deliveries: list[tuple[DeliveryState, datetime | None, str | None]], now: datetime
    ) -> tuple[dict[str, Any], tuple[contracts.EventPayload, str]]:
        """The notice's columns as its ended deliveries mark it, and what to say on the bus in the
        same transaction (``notice.delivered.v1`` or ``notice.dead.v1``)."""
        succeeded = [ended_at or now for state, ended_at, _ in deliveries if state is DeliveryState.SUCCEEDED]
        change: dict[str, Any] = {
            "b_id": notice.id,
            "delivered_at": notice.delivered_at,
            "receipt_due_at": notice.receipt_due_at,
            "dead_at": notice.dead_at,
            "updated_at": now,
        }
        if succeeded:
            delivered_at = min(succeeded)
            receipt_due_at = delivered_at + timedelta(days=notice.receipt_deadline_days)
            change.update(
                state=NoticeState.DELIVERED,
                delivered_at=delivered_at,
                receipt_due_at=receipt_due_at,
                dead_at=None,
            )
            event = notice_event(
                contracts.NoticeDelivered,
                notice,
                delivered_at=delivered_at.isoformat(),
                receipt_due_at=receipt_due_at.isoformat(),
            )
        else:
            change.update(
                state=NoticeState.DEAD, dead_at=max(ended_at or now for _, ended_at, _ in deliveries)
            )
            event = notice_event(
                contracts.NoticeDead,
                notice,
                reason=DELIVERY_FAILED,
                error_classes=sorted({error for _, _, error in deliveries if error}),
            )
        log.info("dispatcher.notice_ended", notice_id=str(notice.id), state=change["state"].value)
        return change, event


def _endpoint_of(leased: _Leased, listed: list[WebhookEndpoint] | Exception) -> WebhookEndpoint | Exception:
    """The leased delivery's endpoint in its organization's list, or why it is not there."""
    if isinstance(listed, Exception):
        return listed
    for endpoint in listed:
        if endpoint.id == leased.endpoint_id:
            return endpoint
    return LookupError("agreement-api does not list the endpoint")


K = TypeVar("K")
V = TypeVar("V")


async def _ask(question: Callable[[K], Awaitable[V]], keys: set[K], at_once: int) -> dict[K, V | Exception]:
    """Ask another service about each key once, up to ``at_once`` questions side by side; an answer
    is the value or, when the service could not answer, the error (the caller leaves those claims)."""
    limit = asyncio.Semaphore(at_once)

    async def one(key: K) -> V | Exception:
        async with limit:
            try:
                return await question(key)
            except (UpstreamError, httpx.HTTPError, ValueError) as exc:
                log.warning("dispatcher.upstream_unavailable", key=str(key), error=str(exc))
                return exc

    ordered = list(keys)
    return dict(zip(ordered, await asyncio.gather(*(one(key) for key in ordered)), strict=True))
