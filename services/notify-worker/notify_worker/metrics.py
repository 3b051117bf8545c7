"""notify-worker's Prometheus metrics on the shared ``/metrics`` (docs/notices.md, "Metrics").

Outcomes are counted in the process that recorded them (sum them over replicas). The backlog and
the lag are read from the database when ``/metrics`` is scraped, so every replica reports the same
figures for the whole schedule (take the max over replicas, not the sum). Both queries use the
partial indexes the claim and attempt queries use, so a scrape stays cheap with millions of notices.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import structlog
from prometheus_client import Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col
from starlette.types import ASGIApp, Receive, Scope, Send

from notify_worker.deliveries.models import DeliveryState, NotifyDelivery
from notify_worker.notices.models import NoticeState, NotifyNotice
from shared.db import utcnow

log = structlog.get_logger("notify_worker.metrics")

DELIVERY_OUTCOMES = Counter(
    "tilbake_notify_delivery_outcomes_total",
    "Delivery attempts by the delivery's state after the attempt (pending: a retry is scheduled) and "
    "the attempt's error class (none for 2xx); deliveries ended because their endpoint was disabled "
    "count as dead/endpoint_disabled",
    ["state", "error_class"],
)
DUE_BACKLOG = Gauge(
    "tilbake_notify_due_backlog",
    "Work that is due and not yet done: scheduled notices with due_at <= now (queue=notices), pending "
    "deliveries with next_attempt_at <= now (queue=deliveries)",
    ["queue"],
)
QUEUE_LAG = Gauge(
    "tilbake_notify_queue_lag_seconds",
    "Seconds since the oldest due scheduled notice (queue=notices) or the oldest due pending delivery "
    "(queue=deliveries) fell due; 0 when nothing is due",
    ["queue"],
)
ENDPOINTS_DISABLED = Counter(
    "tilbake_notify_endpoints_disabled_total", "Webhook endpoints the worker disabled", ["reason"]
)

REFRESH_TIMEOUT_SECONDS = 2.0


def count_outcome(state: DeliveryState, error_class: str | None, amount: int = 1) -> None:
    DELIVERY_OUTCOMES.labels(state.value, error_class or "none").inc(amount)


async def refresh(session: AsyncSession, now: datetime | None = None) -> None:
    """Set the backlog and lag gauges from the database."""
    now = now or utcnow()
    notices = (
        await session.execute(
            select(func.count(), func.min(col(NotifyNotice.due_at))).where(
                col(NotifyNotice.state) == NoticeState.SCHEDULED, col(NotifyNotice.due_at) <= now
            )
        )
    ).one()
    deliveries = (
        await session.execute(
            select(func.count(), func.min(col(NotifyDelivery.next_attempt_at))).where(
                col(NotifyDelivery.state) == DeliveryState.PENDING, col(NotifyDelivery.next_attempt_at) <= now
            )
        )
    ).one()
    for queue, (count, oldest) in (("notices", notices), ("deliveries", deliveries)):
        DUE_BACKLOG.labels(queue).set(count)
        QUEUE_LAG.labels(queue).set(max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)


class RefreshOnScrape:
    """ASGI middleware: a ``GET /metrics`` first refreshes the gauges from the database.

    A scrape never fails because of it: when the database does not answer in time the gauges keep
    their last values (readiness reports the database)."""

    def __init__(self, app: ASGIApp, *, path: str = "/metrics") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == self.path and scope.get("method") == "GET":
            sessionmaker: async_sessionmaker[AsyncSession] | None = getattr(
                scope["app"].state, "sessionmaker", None
            )
            if sessionmaker is not None:
                try:
                    await asyncio.wait_for(_refresh_with(sessionmaker), timeout=REFRESH_TIMEOUT_SECONDS)
                except Exception as exc:
                    log.warning("metrics.refresh_failed", error_class=type(exc).__name__)
        await self.app(scope, receive, send)


async def _refresh_with(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session:
        await refresh(session)
