from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from shared.db import JSONType, UTCDateTime, new_id, utcnow


class TimelineEntry(SQLModel, table=True):
    """One change to a case: who, when, what, before and after."""

    __tablename__ = "case_timeline"
    __table_args__ = (Index("ix_case_timeline_case_at", "case_id", "at", "id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    actor_role: str = Field(max_length=32)
    actor_organization_id: uuid.UUID | None = None
    action: str = Field(max_length=100)
    entity: str = Field(max_length=50)
    entity_id: str | None = Field(default=None, max_length=64)
    before: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    after: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    correlation_id: str | None = Field(default=None, max_length=128)


class AccessLogEntry(SQLModel, table=True):
    """One read of a person's data: who, for which organization, what, on which basis."""

    __tablename__ = "case_access_log"
    __table_args__ = (
        Index("ix_case_access_log_person_at", "person_id", "at"),
        Index("ix_case_access_log_case_at", "case_id", "at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    person_id: uuid.UUID
    case_id: uuid.UUID | None = None
    actor: str = Field(max_length=200)
    actor_role: str = Field(max_length=32)
    actor_organization_id: uuid.UUID | None = None
    what: str = Field(max_length=100)
    basis: str = Field(max_length=200)
    correlation_id: str | None = Field(default=None, max_length=128)
