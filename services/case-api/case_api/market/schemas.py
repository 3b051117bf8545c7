"""Request and response bodies of the service market. Tables are never bodies."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from case_api.domains.models import Domain
from case_api.market.models import (
    AppointmentState,
    LocationType,
    OutcomeCode,
    PrisonCancelCause,
    ProviderKind,
    Recurrence,
    RequestChannel,
    SessionFormat,
    TriageState,
)
from shared.free_text import FreeText, OptionalFreeText

_ID = "3f1c2a9e-6a4b-4d2e-9c1f-0a1b2c3d4e5f"
_OTHER_ID = "8b0e5d1c-2f3a-4b6c-8d7e-9f0a1b2c3d4e"

# --- providers ----------------------------------------------------------------------------------


# The days the service market plans for; outside them local-day arithmetic would overflow.
EARLIEST_DAY = date(1900, 1, 1)
LATEST_DAY = date(2999, 12, 31)
# The bounds as the API documents say them (OpenAPI has no bounds for dates).
DAY_RANGE = f"{EARLIEST_DAY.isoformat()} to {LATEST_DAY.isoformat()}"


class ProviderCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"organization_id": _ID, "name": "NAV Grünerløkka, servicetorg", "kind": "nav"}]
        },
    )

    organization_id: uuid.UUID = Field(description="The provider's organization in the directory.")
    name: FreeText = Field(min_length=1, max_length=200)
    kind: ProviderKind
    active: bool = True


class ProviderUpdate(BaseModel):
    """Send only what changes. Needs `If-Match` with the provider's ETag."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"active": False}]})

    name: OptionalFreeText = Field(None, min_length=1, max_length=200)
    kind: ProviderKind | None = None
    active: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> ProviderUpdate:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class ProviderRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    kind: ProviderKind
    active: bool
    created_at: datetime
    updated_at: datetime
    version: int
    etag: str


# --- sessions -----------------------------------------------------------------------------------


class SessionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "unit_id": _ID,
                    "provider_id": _OTHER_ID,
                    "format": "one_to_one",
                    "location_type": "service_market_room",
                    "starts_at": "2027-01-12T09:00:00+01:00",
                    "ends_at": "2027-01-12T11:00:00+01:00",
                    "capacity": 6,
                    "recurrence": "weekly",
                    "repeat_until": "2027-03-30",
                    "announcement": "NAV is here every Tuesday: work, income and benefits.",
                    "domains": ["work", "income"],
                }
            ]
        },
    )

    unit_id: uuid.UUID
    provider_id: uuid.UUID
    format: SessionFormat
    location_type: LocationType
    location_note: OptionalFreeText = Field(None, max_length=200, examples=["Servicetorget, 2. etasje"])
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    capacity: int = Field(ge=1, le=500)
    recurrence: Recurrence = Recurrence.AD_HOC
    repeat_until: date | None = Field(
        None,
        description="Weekly or monthly: also create the occurrences up to this day (local time, included).",
    )
    announcement: OptionalFreeText = Field(None, max_length=2000)
    domains: list[Domain] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> SessionCreate:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.repeat_until is not None and self.recurrence is Recurrence.AD_HOC:
            raise ValueError("repeat_until needs a weekly or monthly recurrence")
        return self


class CancelSide(StrEnum):
    PROVIDER = "provider"
    NO_ESCORT = "no_escort"
    LOCKDOWN = "lockdown"
    OTHER = "other"


class SessionCancel(BaseModel):
    """Cancel a whole session. Its open appointments are cancelled with it. Needs `If-Match`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"reason": "The provider is ill", "cause": "provider"}]},
    )

    reason: FreeText = Field(min_length=1, max_length=500)
    cause: CancelSide = Field(description="Who cancelled: the provider, or the prison and why.")


class SessionRead(BaseModel):
    id: uuid.UUID
    unit_id: uuid.UUID
    provider_id: uuid.UUID
    provider_name: str
    format: SessionFormat
    location_type: LocationType
    location_note: str | None
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int = Field(description="Appointments that hold a place (not cancelled, moved or no-show).")
    recurrence: Recurrence
    recurrence_group: uuid.UUID | None
    announcement: str | None
    domains: list[Domain]
    cancelled_at: datetime | None
    cancel_reason: str | None
    version: int
    etag: str


class SessionBatch(BaseModel):
    """The sessions one POST created: one, or every occurrence up to `repeat_until`."""

    recurrence_group: uuid.UUID | None
    items: list[SessionRead]


# --- requests -----------------------------------------------------------------------------------


class RequestCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"case_id": _ID, "channel": "request_slip", "wanted_domain": "debt", "note": "Wants help"},
                {"case_id": _ID, "channel": "list_signup", "wanted_provider_id": _OTHER_ID},
            ]
        },
    )

    case_id: uuid.UUID
    channel: RequestChannel
    wanted_provider_id: uuid.UUID | None = None
    wanted_domain: Domain | None = None
    note: OptionalFreeText = Field(None, max_length=300, description="Short; never the content of a talk.")

    @model_validator(mode="after")
    def _wants_something(self) -> RequestCreate:
        if self.wanted_provider_id is None and self.wanted_domain is None:
            raise ValueError("give wanted_provider_id or wanted_domain")
        return self


class RequestTriage(BaseModel):
    """Needs `If-Match` with the request's ETag."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"triage_state": "accepted"}]})

    triage_state: TriageState


class RequestRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    unit_id: uuid.UUID
    channel: RequestChannel
    wanted_provider_id: uuid.UUID | None
    wanted_domain: Domain | None
    note: str | None
    triage_state: TriageState
    created_by: str
    created_at: datetime
    version: int
    etag: str


# --- appointments -------------------------------------------------------------------------------


class AppointmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "session_id": _ID,
                    "case_id": _OTHER_ID,
                    "escort_officers": 2,
                    "needs_lift": True,
                    "high_security": False,
                }
            ]
        },
    )

    session_id: uuid.UUID
    case_id: uuid.UUID
    request_id: uuid.UUID | None = None
    escort_officers: int = Field(1, ge=0, le=10, description="Officers who must escort the inmate.")
    needs_lift: bool = Field(False, description="The way there uses the lift (two officers per inmate).")
    high_security: bool = False
    state: AppointmentState = Field(
        AppointmentState.SCHEDULED, description="`requested` or `scheduled` (the default)."
    )

    @model_validator(mode="after")
    def _initial_state(self) -> AppointmentCreate:
        if self.state not in (AppointmentState.REQUESTED, AppointmentState.SCHEDULED):
            raise ValueError("a new appointment is requested or scheduled")
        return self


class AppointmentTransition(BaseModel):
    """Move an appointment along its states. Check-in and completion have their own endpoints.
    Needs `If-Match` with the appointment's ETag."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"to": "escort_confirmed"},
                {"to": "cancelled_by_prison", "cause": "no_escort", "reason": "Two officers ill"},
                {"to": "rescheduled", "reschedule_to_session_id": _ID},
            ]
        },
    )

    to: AppointmentState
    cause: PrisonCancelCause | None = Field(None, description="Required for `cancelled_by_prison`.")
    reason: OptionalFreeText = Field(None, max_length=500)
    reschedule_to_session_id: uuid.UUID | None = Field(None, description="Required for `rescheduled`.")

    @model_validator(mode="after")
    def _check(self) -> AppointmentTransition:
        if self.to in (AppointmentState.CHECKED_IN, AppointmentState.COMPLETED):
            raise ValueError("use /check-in and /complete for checked_in and completed")
        if (self.to is AppointmentState.CANCELLED_BY_PRISON) != (self.cause is not None):
            raise ValueError("cause is given exactly when cancelled_by_prison")
        if (self.to is AppointmentState.RESCHEDULED) != (self.reschedule_to_session_id is not None):
            raise ValueError("reschedule_to_session_id is given exactly when rescheduled")
        return self


class CheckIn(BaseModel):
    """Needs `If-Match` with the appointment's ETag."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"minutes_late": 5}]})

    minutes_late: int = Field(0, ge=0, le=600)


class Completion(BaseModel):
    """The minimal outcome: what was touched on, whether follow-up or a referral is needed.
    Never the content of the conversation. Needs `If-Match` with the appointment's ETag."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "outcome_code": "held",
                    "domains_touched": ["work", "income"],
                    "follow_up_needed": True,
                    "referral_made": True,
                    "referral_domain": "work",
                    "referral_note": "NAV application for work assessment started",
                }
            ]
        },
    )

    outcome_code: OutcomeCode
    domains_touched: list[Domain] = Field(default_factory=list)
    follow_up_needed: bool = False
    referral_made: bool = False
    referral_domain: Domain | None = None
    referral_note: OptionalFreeText = Field(None, min_length=1, max_length=300)

    @model_validator(mode="after")
    def _referral(self) -> Completion:
        if self.referral_made and (self.referral_domain is None or self.referral_note is None):
            raise ValueError("a referral needs referral_domain and referral_note")
        if not self.referral_made and (self.referral_domain is not None or self.referral_note is not None):
            raise ValueError("referral_domain and referral_note belong to a referral")
        return self


class CheckinRead(BaseModel):
    """Service market staff see attendance only: the domain fields are null for them."""

    checked_in_by: str
    checked_in_at: datetime
    minutes_late: int
    outcome_code: OutcomeCode | None
    completed_at: datetime | None
    domains_touched: list[Domain] | None = None
    follow_up_needed: bool | None = None
    referral_made: bool | None = None
    referral_domain: Domain | None = None
    referral_note: str | None = None
    referral_action_id: uuid.UUID | None = None


class AppointmentRead(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    case_id: uuid.UUID
    person_name: str = Field(description='Given name and initial, e.g. "Kari N.".')
    unit_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    provider_id: uuid.UUID
    provider_name: str
    request_id: uuid.UUID | None
    escort_officers: int
    needs_lift: bool
    high_security: bool
    state: AppointmentState
    allowed_next: list[AppointmentState]
    cancel_cause: PrisonCancelCause | None
    state_reason: str | None
    rescheduled_to_id: uuid.UUID | None
    checkin: CheckinRead | None
    created_at: datetime
    version: int
    etag: str


# --- day list, capacity, statistics -------------------------------------------------------------


class UnitCapacityUpdate(BaseModel):
    """`If-Match` is needed once the unit has a capacity (its ETag from GET)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"escorts_available": 4}]})

    escorts_available: int = Field(ge=0, le=500)


class UnitCapacityRead(BaseModel):
    unit_id: uuid.UUID
    escorts_available: int
    updated_by: str | None
    updated_at: datetime | None
    version: int
    etag: str | None


class DayListEntry(BaseModel):
    appointment_id: uuid.UUID
    case_id: uuid.UUID
    person_name: str = Field(examples=["Kari N."])
    session_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    provider_name: str
    format: SessionFormat
    location_type: LocationType
    location_note: str | None
    escort_officers: int
    needs_lift: bool
    high_security: bool
    state: AppointmentState
    version: int


class DayListSession(BaseModel):
    session_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    provider_name: str
    format: SessionFormat
    location_type: LocationType
    capacity: int
    booked: int
    cancelled: bool


class HourLoad(BaseModel):
    hour: datetime = Field(description="Start of the local hour.")
    escorts_needed: int
    escorts_available: int
    over_capacity: bool


class ConflictKind(StrEnum):
    INMATE_DOUBLE_BOOKED = "inmate_double_booked"
    HOUR_OVER_ESCORT_CAPACITY = "hour_over_escort_capacity"
    SESSION_OVER_CAPACITY = "session_over_capacity"


class DayListConflict(BaseModel):
    kind: ConflictKind
    detail: str
    session_ids: list[uuid.UUID] = Field(default_factory=list)
    appointment_ids: list[uuid.UUID] = Field(default_factory=list)
    hour: datetime | None = None


class DayList(BaseModel):
    """Who goes where and when in one unit on one day, and what does not add up."""

    unit_id: uuid.UUID
    date: date
    escorts_available: int
    sessions: list[DayListSession]
    entries: list[DayListEntry]
    hours: list[HourLoad]
    conflicts: list[DayListConflict]


class StatisticsGroupBy(StrEnum):
    MONTH = "month"
    PROVIDER = "provider"
    DOMAIN = "domain"


class StatisticsRow(BaseModel):
    key: str = Field(description="The month (YYYY-MM), provider id or domain; `total` for all.")
    label: str
    sessions: int
    sessions_held: int
    sessions_cancelled: int
    unique_inmates_served: int
    requests: int
    appointments: int
    appointments_held: int
    no_shows: int
    cancelled_by_prison_no_escort: int
    cancelled_by_prison_lockdown: int
    cancelled_by_prison_other: int
    cancelled_by_provider: int
    weeks_with_nav_present: int


class Statistics(BaseModel):
    unit_id: uuid.UUID
    from_date: date
    to_date: date
    group_by: StatisticsGroupBy
    weeks_in_period: int
    rows: list[StatisticsRow]
    total: StatisticsRow
