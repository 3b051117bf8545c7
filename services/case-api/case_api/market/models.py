"""Service market tables. Every table is ``case_market_*`` (the migration tooling owns them by prefix)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Index, Integer
from sqlmodel import Field, SQLModel

from case_api.domains.models import Domain
from shared.db import JSONType, UTCDateTime, enum_type, new_id, utcnow


class ProviderKind(StrEnum):
    NAV = "nav"
    HOUSING = "housing"
    FINANCIAL_ADVICE = "financial_advice"
    VOLUNTEER = "volunteer"
    INTERNAL_SERVICE = "internal_service"
    HEALTH = "health"
    EDUCATION = "education"
    OTHER = "other"


class SessionFormat(StrEnum):
    ONE_TO_ONE = "one_to_one"
    THEME_EVENING = "theme_evening"
    PRESENTATION = "presentation"
    CELL_VISIT = "cell_visit"
    VIDEO = "video"


class LocationType(StrEnum):
    SERVICE_MARKET_ROOM = "service_market_room"
    CELL = "cell"
    VIDEO = "video"
    OTHER = "other"


class Recurrence(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    AD_HOC = "ad_hoc"


class RequestChannel(StrEnum):
    REQUEST_SLIP = "request_slip"  # samtalelapp
    LIST_SIGNUP = "list_signup"
    AFTER_PRESENTATION = "after_presentation"
    STAFF_REFERRAL = "staff_referral"


class TriageState(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    SCHEDULED = "scheduled"


class AppointmentState(StrEnum):
    REQUESTED = "requested"
    SCHEDULED = "scheduled"
    ESCORT_CONFIRMED = "escort_confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED_BY_PRISON = "cancelled_by_prison"
    CANCELLED_BY_PROVIDER = "cancelled_by_provider"
    MOVED_TO_CELL_VISIT = "moved_to_cell_visit"
    MOVED_TO_VIDEO = "moved_to_video"
    RESCHEDULED = "rescheduled"


class PrisonCancelCause(StrEnum):
    NO_ESCORT = "no_escort"
    LOCKDOWN = "lockdown"
    OTHER = "other"


class OutcomeCode(StrEnum):
    HELD = "held"
    PARTLY_HELD = "partly_held"
    NOT_HELD_INMATE_DECLINED = "not_held_inmate_declined"
    NOT_HELD_PROVIDER_ABSENT = "not_held_provider_absent"
    NOT_HELD_NO_ESCORT = "not_held_no_escort"


_provider_version = Column("version", Integer, nullable=False)


class MarketProvider(SQLModel, table=True):
    """Who comes to the service market: an organization of the directory under a display name."""

    __tablename__ = "case_market_provider"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    organization_id: uuid.UUID = Field(index=True)
    name: str = Field(max_length=200)
    kind: ProviderKind = Field(sa_type=enum_type(ProviderKind))
    active: bool = Field(default=True)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_provider_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _provider_version}


_session_version = Column("version", Integer, nullable=False)


class MarketSession(SQLModel, table=True):
    """One time slot a provider is at a unit's service market."""

    __tablename__ = "case_market_session"
    __table_args__ = (Index("ix_case_market_session_unit_starts", "unit_id", "starts_at", "id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    unit_id: uuid.UUID = Field(index=True)
    provider_id: uuid.UUID = Field(foreign_key="case_market_provider.id", index=True)
    format: SessionFormat = Field(sa_type=enum_type(SessionFormat))
    location_type: LocationType = Field(sa_type=enum_type(LocationType))
    location_note: str | None = Field(default=None, max_length=200)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    capacity: int
    recurrence: Recurrence = Field(default=Recurrence.AD_HOC, sa_type=enum_type(Recurrence))
    # Shared by the occurrences one POST with repeat_until created.
    recurrence_group: uuid.UUID | None = Field(default=None, index=True)
    announcement: str | None = Field(default=None, max_length=2000)
    domains: list[str] = Field(default_factory=list, sa_type=JSONType)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancel_reason: str | None = Field(default=None, max_length=500)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_session_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _session_version}


_request_version = Column("version", Integer, nullable=False)


class MarketRequest(SQLModel, table=True):
    """An inmate's wish to see a provider or get help in a domain (a digitised samtalelapp)."""

    __tablename__ = "case_market_request"
    __table_args__ = (Index("ix_case_market_request_unit_created", "unit_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id", index=True)
    # The case's unit when the request came in: the unit whose service market answers it.
    unit_id: uuid.UUID
    channel: RequestChannel = Field(sa_type=enum_type(RequestChannel))
    wanted_provider_id: uuid.UUID | None = Field(default=None, foreign_key="case_market_provider.id")
    wanted_domain: Domain | None = Field(default=None, sa_type=enum_type(Domain, length=40))
    note: str | None = Field(default=None, max_length=300)
    triage_state: TriageState = Field(default=TriageState.NEW, sa_type=enum_type(TriageState))
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_request_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _request_version}


_appointment_version = Column("version", Integer, nullable=False)


class MarketAppointment(SQLModel, table=True):
    """One inmate's place in one session, with what it takes to bring them there."""

    __tablename__ = "case_market_appointment"
    __table_args__ = (Index("ix_case_market_appointment_case_state", "case_id", "state"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    session_id: uuid.UUID = Field(foreign_key="case_market_session.id", index=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id")
    request_id: uuid.UUID | None = Field(default=None, foreign_key="case_market_request.id", index=True)
    escort_officers: int = Field(default=1)
    needs_lift: bool = Field(default=False)
    high_security: bool = Field(default=False)
    state: AppointmentState = Field(default=AppointmentState.SCHEDULED, sa_type=enum_type(AppointmentState))
    cancel_cause: PrisonCancelCause | None = Field(default=None, sa_type=enum_type(PrisonCancelCause))
    # Set when moved to a cell visit or video: the appointment no longer takes a place in the room.
    moved_to: LocationType | None = Field(default=None, sa_type=enum_type(LocationType))
    state_reason: str | None = Field(default=None, max_length=500)
    state_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    rescheduled_to_id: uuid.UUID | None = Field(default=None, foreign_key="case_market_appointment.id")
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_appointment_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _appointment_version}


class MarketCheckin(SQLModel, table=True):
    """Attendance and the minimal outcome of one appointment. Never the conversation."""

    __tablename__ = "case_market_checkin"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    appointment_id: uuid.UUID = Field(foreign_key="case_market_appointment.id", unique=True)
    checked_in_by: str = Field(max_length=200)
    checked_in_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    minutes_late: int = Field(default=0)
    outcome_code: OutcomeCode | None = Field(default=None, sa_type=enum_type(OutcomeCode, length=40))
    domains_touched: list[str] = Field(default_factory=list, sa_type=JSONType)
    follow_up_needed: bool = Field(default=False)
    referral_made: bool = Field(default=False)
    referral_domain: Domain | None = Field(default=None, sa_type=enum_type(Domain, length=40))
    referral_note: str | None = Field(default=None, max_length=300)
    referral_action_id: uuid.UUID | None = Field(default=None)
    completed_by: str | None = Field(default=None, max_length=200)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


_capacity_version = Column("version", Integer, nullable=False)


class MarketUnitCapacity(SQLModel, table=True):
    """How many officers a unit can spare for escorts in an hour of a service market day."""

    __tablename__ = "case_market_unit_capacity"

    unit_id: uuid.UUID = Field(primary_key=True)
    escorts_available: int
    updated_by: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_capacity_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _capacity_version}
