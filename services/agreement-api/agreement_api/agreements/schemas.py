from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agreement_api.agreements.models import (
    AgreementLevel,
    AgreementStatus,
    MeetingCadence,
    ReintegrationDomain,
    SharingField,
)
from shared.contracts import events as contracts
from shared.directory import OrganizationType
from shared.free_text import FreeText, OptionalFreeText

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.v[0-9]+$"

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Contact(BaseModel):
    """A contact person for the agreement."""

    model_config = ConfigDict(extra="forbid")

    name: FreeText = Field(min_length=1, max_length=200)
    organization_id: uuid.UUID | None = None
    role: OptionalFreeText = Field(None, max_length=200)
    phone: str | None = Field(None, max_length=40)
    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN)


class PartyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organization_id: uuid.UUID
    role: OptionalFreeText = Field(None, max_length=200, examples=["kommune"])


class PartyRead(BaseModel):
    organization_id: uuid.UUID
    role: str | None


class Milestone(BaseModel):
    """A notice milestone: ``days_before_release`` calendar days, or business days when ``business_days``."""

    model_config = ConfigDict(extra="forbid")

    days_before_release: int = Field(ge=0, le=365, examples=[90])
    business_days: bool = False


class Escalation(BaseModel):
    """Who to contact when a notice is not acknowledged within the receipt deadline."""

    model_config = ConfigDict(extra="forbid")

    name: FreeText = Field(min_length=1, max_length=200)
    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN)
    phone: str | None = Field(None, max_length=40)
    organization_id: uuid.UUID | None = None


class DataSharingProfile(BaseModel):
    """What a recipient may see: case facts (``fields``) for the listed domains."""

    model_config = ConfigDict(extra="forbid")

    domains: list[ReintegrationDomain] = Field(default_factory=list)
    fields: list[SharingField] = Field(default_factory=list)


RecipientType = Literal[OrganizationType.MUNICIPALITY, OrganizationType.NAV_OFFICE]

_RULE_EXAMPLE: dict[str, Any] = {
    "recipient_organization_type": "municipality",
    "milestones": [
        {"days_before_release": 90, "business_days": False},
        {"days_before_release": 10, "business_days": True},
    ],
    "event_types": [contracts.CaseOpened.TYPE, contracts.CaseReleaseDateChanged.TYPE],
    "receipt_deadline_days": 5,
    "escalation": {"name": "Kari Nordmann", "email": "kari.nordmann@halden.kommune.no"},
    "data_sharing_profile": {
        "domains": ["housing", "income"],
        "fields": ["release_date", "release_date_certainty", "unit", "coordinator_contact"],
    },
}


class NoticeRuleCreate(BaseModel):
    """One notice rule. Give exactly one of ``recipient_organization_id`` and
    ``recipient_organization_type`` (a type resolves per case: the responsible municipality, or the
    case's NAV office)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_RULE_EXAMPLE]})

    recipient_organization_id: uuid.UUID | None = None
    recipient_organization_type: RecipientType | None = None
    milestones: list[Milestone] = Field(min_length=1, max_length=20)
    event_types: list[str] = Field(default_factory=list, max_length=50)
    receipt_deadline_days: int = Field(ge=0, le=90, examples=[5])
    escalation: Escalation | None = None
    data_sharing_profile: DataSharingProfile

    @model_validator(mode="after")
    def _one_recipient(self) -> Self:
        if (self.recipient_organization_id is None) == (self.recipient_organization_type is None):
            raise ValueError("give exactly one of recipient_organization_id and recipient_organization_type")
        for event_type in self.event_types:
            _check_event_type(event_type)
        return self


def _check_event_type(value: str) -> None:
    if not re.match(EVENT_TYPE_PATTERN, value):
        raise ValueError(f"{value!r} is not a versioned event type such as case.opened.v1")


class NoticeRuleUpdate(BaseModel):
    """Fields PATCH may change; send only what changes. Needs If-Match with the rule's ETag."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "milestones": [
                        {"days_before_release": 90},
                        {"days_before_release": 10, "business_days": True},
                    ],
                    "receipt_deadline_days": 5,
                }
            ]
        },
        extra="forbid",
    )

    recipient_organization_id: uuid.UUID | None = None
    recipient_organization_type: RecipientType | None = None
    milestones: list[Milestone] | None = Field(None, min_length=1, max_length=20)
    event_types: list[str] | None = Field(None, max_length=50)
    receipt_deadline_days: int | None = Field(None, ge=0, le=90)
    escalation: Escalation | None = None
    data_sharing_profile: DataSharingProfile | None = None

    @model_validator(mode="after")
    def _event_types(self) -> Self:
        for event_type in self.event_types or []:
            _check_event_type(event_type)
        return self


class NoticeRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agreement_id: uuid.UUID
    recipient_organization_id: uuid.UUID | None
    recipient_organization_type: OrganizationType | None
    milestones: list[Milestone]
    event_types: list[str]
    receipt_deadline_days: int
    escalation: Escalation | None
    data_sharing_profile: DataSharingProfile
    created_at: datetime
    updated_at: datetime
    version: int


_AGREEMENT_EXAMPLE: dict[str, Any] = {
    "title": "Samarbeidsavtale Halden fengsel og Halden kommune",
    "level": "local",
    "valid_from": "2027-01-01",
    "valid_to": "2028-12-31",
    "routines": "Fengselet varsler kommunen senest 90 dager før løslatelse.",
    "meeting_cadence": "quarterly",
    "document_references": ["sak 2026/1234"],
    "contacts": [{"name": "Ola Nordmann", "role": "koordinator", "email": "ola.nordmann@example.no"}],
    "domains": ["housing", "work", "income"],
    "parties": [
        {"organization_id": "6f1c7f0e-1d0a-4c1e-9b3e-2a9f1f2d3c4b", "role": "fengsel"},
        {"organization_id": "0b7d4a8e-5e2f-4f7a-8c1d-3e4f5a6b7c8d", "role": "kommune"},
    ],
}


class AgreementCreate(BaseModel):
    """A new agreement, created as a draft. Needs at least two distinct parties from the directory."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_AGREEMENT_EXAMPLE]})

    title: FreeText = Field(min_length=2, max_length=300)
    level: AgreementLevel
    valid_from: date
    valid_to: date | None = None
    routines: FreeText = Field("", max_length=20000)
    meeting_cadence: MeetingCadence = MeetingCadence.AS_NEEDED
    document_references: list[FreeText] = Field(default_factory=list, max_length=100)
    contacts: list[Contact] = Field(default_factory=list, max_length=100)
    domains: list[ReintegrationDomain] = Field(min_length=1)
    parties: list[PartyIn] = Field(max_length=100)


class AgreementUpdate(BaseModel):
    """Fields PATCH may change; send only what changes. Needs If-Match. In place while draft or
    negotiating; on an active (or under-review) agreement it makes a new version."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Samarbeidsavtale Halden fengsel og Halden kommune",
                    "meeting_cadence": "quarterly",
                    "valid_to": "2029-12-31",
                }
            ]
        },
        extra="forbid",
    )

    title: OptionalFreeText = Field(None, min_length=2, max_length=300)
    level: AgreementLevel | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    routines: OptionalFreeText = Field(None, max_length=20000)
    meeting_cadence: MeetingCadence | None = None
    document_references: list[FreeText] | None = Field(None, max_length=100)
    contacts: list[Contact] | None = Field(None, max_length=100)
    domains: list[ReintegrationDomain] | None = Field(None, min_length=1)
    parties: list[PartyIn] | None = Field(None, max_length=100)


class AgreementRead(BaseModel):
    id: uuid.UUID
    title: str
    level: AgreementLevel
    status: AgreementStatus
    status_reason: str | None
    allowed_next: list[AgreementStatus]
    valid_from: date
    valid_to: date | None
    routines: str
    meeting_cadence: MeetingCadence
    document_references: list[str]
    contacts: list[Contact]
    domains: list[ReintegrationDomain]
    parties: list[PartyRead]
    rules: list[NoticeRuleRead]
    current_version: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    version: int = Field(description="Row version (the ETag), not the agreement version.")


class StatusChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "negotiating", "reason": "Utkast sendt til kommunen."}]},
        extra="forbid",
    )

    status: AgreementStatus = Field(examples=["negotiating"])
    reason: OptionalFreeText = Field(None, max_length=1000)


class AgreementVersionRead(BaseModel):
    """A frozen version: ``snapshot`` is the whole agreement (parties and rules) as it stood."""

    model_config = ConfigDict(from_attributes=True)

    agreement_id: uuid.UUID
    version_number: int
    created_at: datetime
    created_by: str | None
    snapshot: AgreementRead
