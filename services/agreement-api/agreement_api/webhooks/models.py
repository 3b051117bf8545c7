"""Webhook endpoints of an organization and the keys that sign what is sent to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Integer
from sqlmodel import Field, SQLModel

from shared.db import JSONType, UTCDateTime, enum_type, new_id, utcnow

__all__ = ["EndpointState", "KeyKind", "KeyState", "WebhookEndpoint", "WebhookKey"]


class EndpointState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class KeyKind(StrEnum):
    HMAC = "hmac"
    ED25519 = "ed25519"


class KeyState(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


_endpoint_version = Column("version", Integer, nullable=False, server_default="1")


class WebhookEndpoint(SQLModel, table=True):
    """Where an organization wants events delivered. ``event_types`` empty means every type."""

    __tablename__ = "agreement_webhook_endpoint"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(foreign_key="agreement_organization.id", index=True)
    url: str = Field(max_length=2000)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(default_factory=list, sa_type=JSONType)
    state: EndpointState = Field(default=EndpointState.ACTIVE, sa_type=enum_type(EndpointState), index=True)
    disabled_reason: str | None = Field(default=None, max_length=500)
    rate_limit_per_minute: int = Field(default=60)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_endpoint_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _endpoint_version}


class WebhookKey(SQLModel, table=True):
    """One signing key of an endpoint. Secret material is stored Fernet-encrypted, never in clear."""

    __tablename__ = "agreement_webhook_key"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    endpoint_id: uuid.UUID = Field(foreign_key="agreement_webhook_endpoint.id", index=True)
    kind: KeyKind = Field(sa_type=enum_type(KeyKind))
    encrypted_secret: str = Field(max_length=1000)
    public_key: str | None = Field(default=None, max_length=100)
    fingerprint: str = Field(max_length=100)
    state: KeyState = Field(default=KeyState.ACTIVE, sa_type=enum_type(KeyState))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    not_before: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
