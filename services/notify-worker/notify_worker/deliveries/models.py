"""The deliveries domain's tables: one delivery per notice and webhook endpoint, its attempts,
and each endpoint's health."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, enum_type, new_id, utcnow


class DeliveryState(StrEnum):
    PENDING = "pending"  # waits for next_attempt_at
    SUCCEEDED = "succeeded"  # the endpoint answered 2xx
    FAILED_PERMANENTLY = "failed_permanently"  # 410 Gone, or its URL was refused at send time
    DEAD = "dead"  # the retry schedule ran out
    SUPERSEDED = "superseded"  # the notice's date or consent changed first; never attempted again


LIVE_DELIVERY = text("state <> 'superseded'")  # the predicate of the one-live-delivery index


class NotifyDelivery(SQLModel, table=True):
    """One notice to one webhook endpoint of its recipient; retried until it ends."""

    __tablename__ = "notify_delivery"
    __table_args__ = (
        # One live delivery per notice and endpoint; superseded ones stay beside it as history.
        Index(
            "uq_notify_delivery_notice_endpoint",
            "notice_id",
            "endpoint_id",
            unique=True,
            postgresql_where=text("state <> 'superseded'"),
            sqlite_where=text("state <> 'superseded'"),
        ),
        # The attempt query: pending deliveries by next attempt.
        Index(
            "ix_notify_delivery_due",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # Dead letters of an endpoint since a time (redelivery), and listing by state.
        Index("ix_notify_delivery_endpoint_state", "endpoint_id", "state", "ended_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    notice_id: uuid.UUID = Field(foreign_key="notify_notice.id", index=True)
    endpoint_id: uuid.UUID
    organization_id: uuid.UUID
    url: str = Field(max_length=2000)
    webhook_id: str = Field(max_length=64, description="`webhook-id`: the same on every retry.")
    state: DeliveryState = Field(default=DeliveryState.PENDING, sa_type=enum_type(DeliveryState))
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    last_status: int | None = Field(default=None)
    last_error_class: str | None = Field(default=None, max_length=64)
    redeliveries: int = Field(default=0, description="How often an operator sent a dead letter again.")
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class NotifyAttempt(SQLModel, table=True):
    """One POST of a delivery, whatever came of it."""

    __tablename__ = "notify_attempt"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    delivery_id: uuid.UUID = Field(foreign_key="notify_delivery.id", index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    status_code: int | None = Field(default=None)
    duration_ms: int
    error_class: str | None = Field(default=None, max_length=64)


class NotifyEndpointHealth(SQLModel, table=True):
    """Per webhook endpoint: since when its deliveries fail, and whether the worker disabled it."""

    __tablename__ = "notify_endpoint_health"

    endpoint_id: uuid.UUID = Field(primary_key=True)
    organization_id: uuid.UUID
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failure_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_reason: str | None = Field(default=None, max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
