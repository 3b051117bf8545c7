"""Transactional outbox, relay and consumer inbox.

A service never publishes inside a request: :func:`add_event` writes the event row in the same
transaction as the business change, and :class:`OutboxRelay` publishes committed rows (waiting
for the broker's confirmation) and marks them sent. Delivery is at-least-once, so every consumer
records handled event ids in its inbox (:func:`first_delivery`) within its own unit of work.
Each service owns its own outbox and inbox tables (``<prefix>_outbox``, ``<prefix>_inbox``).
"""

from __future__ import annotations

import asyncio
import contextlib
import types
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Index, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import Field, SQLModel, col

from shared.bus import MessageBus
from shared.contracts.events import EventPayload
from shared.db import JSONType, UTCDateTime, insert_ignoring_conflicts, table_of, unit_of_work, utcnow
from shared.events import EventEnvelope
from shared.metrics import OUTBOX_PUBLISH_FAILURES, OUTBOX_PUBLISHED

log = structlog.get_logger("shared.outbox")


class OutboxRecord(SQLModel):
    """Columns of every outbox table (the table itself is made per service)."""

    id: uuid.UUID = Field(primary_key=True)
    type: str = Field(max_length=200)
    source: str = Field(max_length=64)
    subject: str = Field(max_length=200)
    correlation_id: str | None = Field(default=None, max_length=128)
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    data: dict[str, Any] = Field(sa_type=JSONType)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = Field(default=0)
    last_error: str | None = Field(default=None, max_length=200)

    def envelope(self) -> EventEnvelope:
        return EventEnvelope(
            id=self.id,
            type=self.type,
            occurred_at=self.occurred_at,
            source=self.source,
            subject=self.subject,
            correlation_id=self.correlation_id,
            data=self.data,
        )


class InboxRecord(SQLModel):
    """Columns of every inbox table: one row per event a consumer has handled."""

    event_id: uuid.UUID = Field(primary_key=True)
    type: str = Field(max_length=200)
    received_at: datetime = Field(sa_type=UTCDateTime)


def _camel(prefix: str) -> str:
    return "".join(part.capitalize() for part in prefix.split("_"))


def outbox_model(prefix: str, module: str) -> type[OutboxRecord]:
    """Declare ``<prefix>_outbox`` for one service."""
    table = f"{prefix}_outbox"

    def body(ns: dict[str, Any]) -> None:
        ns["__tablename__"] = table
        ns["__module__"] = module
        ns["__table_args__"] = (
            # Only unpublished rows are ever scanned: keep that index small.
            Index(
                f"ix_{table}_unpublished",
                "occurred_at",
                postgresql_where=text("published_at IS NULL"),
                sqlite_where=text("published_at IS NULL"),
            ),
        )

    return types.new_class(f"{_camel(prefix)}Outbox", (OutboxRecord,), {"table": True}, body)


def inbox_model(prefix: str, module: str) -> type[InboxRecord]:
    """Declare ``<prefix>_inbox`` for one consuming service."""

    def body(ns: dict[str, Any]) -> None:
        ns["__tablename__"] = f"{prefix}_inbox"
        ns["__module__"] = module

    return types.new_class(f"{_camel(prefix)}Inbox", (InboxRecord,), {"table": True}, body)


def envelope(payload: EventPayload, *, subject: str) -> EventEnvelope:
    """The event for ``payload``: its type and source from the payload's contract."""
    return EventEnvelope(type=payload.TYPE, source=payload.PRODUCER, subject=subject, data=payload.data())


def add_event(
    session: AsyncSession, model: type[OutboxRecord], payload: EventPayload, *, subject: str
) -> EventEnvelope:
    """Stage ``payload`` as an event in the caller's transaction; it is published only if that
    commits. Its type and source come from the payload's contract."""
    event = envelope(payload, subject=subject)
    session.add(
        model(
            id=event.id,
            type=event.type,
            source=event.source,
            subject=event.subject,
            correlation_id=event.correlation_id,
            occurred_at=event.occurred_at,
            data=event.data,
        )
    )
    return event


async def add_events(
    session: AsyncSession, model: type[OutboxRecord], events: Sequence[tuple[EventPayload, str]]
) -> list[EventEnvelope]:
    """:func:`add_event` for many (payload, subject) pairs in one INSERT statement, for hot paths
    that stage an event per row of a batch."""
    staged = [envelope(payload, subject=subject) for payload, subject in events]
    if staged:
        await session.execute(
            insert(table_of(model)),
            [
                {
                    "id": event.id,
                    "type": event.type,
                    "source": event.source,
                    "subject": event.subject,
                    "correlation_id": event.correlation_id,
                    "occurred_at": event.occurred_at,
                    "data": event.data,
                    "attempts": 0,
                }
                for event in staged
            ],
        )
    return staged


async def first_delivery(session: AsyncSession, model: type[InboxRecord], event: EventEnvelope) -> bool:
    """Record ``event`` as handled; False when it was handled before (a redelivery)."""
    table = model.__table__  # type: ignore[attr-defined]
    values = {"event_id": event.id, "type": event.type, "received_at": utcnow()}
    statement = insert_ignoring_conflicts(session, table, values, key=["event_id"])
    result = await session.execute(statement.returning(table.c.event_id))
    return result.first() is not None


class RelayPublishError(Exception):
    """The broker refused or lost a publish; the relay backs off before the next round."""

    def __init__(self, published: int) -> None:
        super().__init__(f"publish failed after {published} event(s) in this batch")
        self.published = published


class OutboxRelay:
    """Publishes committed outbox rows in occurrence order and marks them sent.

    Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so several replicas can relay side by side.
    A failed publish leaves the row (and the rows after it) unpublished for the next round; the
    loop backs off while the broker or database is down and recovers by itself.
    """

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        model: type[OutboxRecord],
        bus: MessageBus,
        batch_size: int = 100,
        poll_seconds: float = 0.5,
        max_backoff_seconds: float = 10.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.sessionmaker = sessionmaker
        self.model = model
        self.bus = bus
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.retention = retention
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.publish_failures = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        model = self.model
        published = 0
        failed = False
        async with unit_of_work(self.sessionmaker) as session:
            rows = (
                (
                    await session.execute(
                        select(model)
                        .where(model.published_at.is_(None))  # type: ignore[union-attr]
                        .order_by(model.occurred_at)  # type: ignore[arg-type]
                        .limit(self.batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            for row in rows:
                try:
                    await self.bus.publish(row.envelope())
                except Exception as exc:
                    row.attempts += 1
                    row.last_error = type(exc).__name__
                    self.publish_failures += 1
                    failed = True
                    OUTBOX_PUBLISH_FAILURES.labels(table=model.__tablename__).inc()
                    log.warning(
                        "outbox.publish_failed",
                        event_id=str(row.id),
                        error_class=type(exc).__name__,
                    )
                    break
                row.published_at = utcnow()
                published += 1
        if published:
            OUTBOX_PUBLISHED.labels(table=model.__tablename__).inc(published)
        if failed:
            raise RelayPublishError(published)
        return published

    async def purge(self) -> int:
        """Delete rows published longer ago than the retention period."""
        cutoff = utcnow() - self.retention
        async with unit_of_work(self.sessionmaker) as session:
            result = await session.execute(delete(self.model).where(col(self.model.published_at) < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)

    async def pending(self) -> int:
        async with self.sessionmaker() as session:
            rows = await session.execute(
                select(col(self.model.id)).where(col(self.model.published_at).is_(None))
            )
            return len(rows.all())

    async def run(self) -> None:
        """Relay until :meth:`stop` is called."""
        backoff = self.poll_seconds
        last_purge = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                published = await self.run_once()
                if loop.time() - last_purge > 3600:
                    await self.purge()
                    last_purge = loop.time()
                backoff = self.poll_seconds
            except RelayPublishError:
                published = 0
                backoff = min(backoff * 2, self.max_backoff_seconds)
            except Exception as exc:  # database unreachable, etc.: keep going after a pause
                log.warning("outbox.relay_error", error_class=type(exc).__name__)
                published = 0
                backoff = min(backoff * 2, self.max_backoff_seconds)
            if published >= self.batch_size:
                continue  # more waiting: no pause
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
