"""Agreement tables: agreements, their parties, frozen versions, notice rules, and the case read model."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import JSONType, UTCDateTime, enum_type, new_id, utcnow
from shared.directory import OrganizationType

__all__ = [
    "Agreement",
    "AgreementLevel",
    "AgreementParty",
    "AgreementStatus",
    "AgreementVersion",
    "CaseRef",
    "MeetingCadence",
    "NoticeRule",
    "ReintegrationDomain",
    "SharingField",
]


class ReintegrationDomain(StrEnum):
    """The reintegration domains an agreement or a data-sharing profile covers (same set as case-api)."""

    HOUSING = "housing"
    WORK = "work"
    INCOME = "income"
    DEBT = "debt"
    PHYSICAL_HEALTH = "physical_health"
    MENTAL_HEALTH = "mental_health"
    SUBSTANCE_TREATMENT = "substance_treatment"
    EDUCATION = "education"
    SOCIAL_SERVICES = "social_services"
    ID_PAPERS = "id_papers"
    NETWORK_FAMILY = "network_family"


class SharingField(StrEnum):
    """The fixed set of case facts a data-sharing profile may release to a recipient.

    - ``release_date``: the effective (confirmed or expected) release date
    - ``release_date_certainty``: whether that date is confirmed or expected
    - ``unit``: the prison or office where the case lives
    - ``coordinator_contact``: the case coordinator's name and contact details
    - ``domain_status``: the status of each shared domain
    - ``domain_needs``: the needs identified in each shared domain
    - ``domain_actions``: the actions agreed in each shared domain
    - ``group_contacts``: the responsibility group's contact persons
    """

    RELEASE_DATE = "release_date"
    RELEASE_DATE_CERTAINTY = "release_date_certainty"
    UNIT = "unit"
    COORDINATOR_CONTACT = "coordinator_contact"
    DOMAIN_STATUS = "domain_status"
    DOMAIN_NEEDS = "domain_needs"
    DOMAIN_ACTIONS = "domain_actions"
    GROUP_CONTACTS = "group_contacts"


class AgreementLevel(StrEnum):
    NATIONAL = "national"
    REGIONAL = "regional"
    LOCAL = "local"


class AgreementStatus(StrEnum):
    DRAFT = "draft"
    NEGOTIATING = "negotiating"
    SIGNED = "signed"
    ACTIVE = "active"
    UNDER_REVIEW = "under_review"
    EXPIRED = "expired"
    TERMINATED = "terminated"


class MeetingCadence(StrEnum):
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    HALF_YEARLY = "half_yearly"
    YEARLY = "yearly"
    AS_NEEDED = "as_needed"


_agreement_version = Column("version", Integer, nullable=False, server_default="1")


class Agreement(SQLModel, table=True):
    __tablename__ = "agreement_agreement"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    title: str = Field(max_length=300)
    level: AgreementLevel = Field(sa_type=enum_type(AgreementLevel), index=True)
    status: AgreementStatus = Field(
        default=AgreementStatus.DRAFT, sa_type=enum_type(AgreementStatus), index=True
    )
    status_reason: str | None = Field(default=None, max_length=1000)
    valid_from: date
    valid_to: date | None = None
    routines: str = Field(default="", max_length=20000)
    meeting_cadence: MeetingCadence = Field(sa_type=enum_type(MeetingCadence))
    document_references: list[str] = Field(default_factory=list, sa_type=JSONType)
    contacts: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    domains: list[str] = Field(default_factory=list, sa_type=JSONType)
    current_version: int = Field(default=1)
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_agreement_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _agreement_version}


class AgreementParty(SQLModel, table=True):
    __tablename__ = "agreement_party"
    __table_args__ = (UniqueConstraint("agreement_id", "organization_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agreement_id: uuid.UUID = Field(foreign_key="agreement_agreement.id", index=True)
    organization_id: uuid.UUID = Field(foreign_key="agreement_organization.id", index=True)
    role: str | None = Field(default=None, max_length=200)


class AgreementVersion(SQLModel, table=True):
    """A frozen copy of an agreement (with parties and rules) as it stood in one version."""

    __tablename__ = "agreement_agreement_version"
    __table_args__ = (UniqueConstraint("agreement_id", "version_number"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agreement_id: uuid.UUID = Field(foreign_key="agreement_agreement.id", index=True)
    version_number: int
    snapshot: dict[str, Any] = Field(sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str | None = Field(default=None, max_length=200)


_rule_version = Column("version", Integer, nullable=False, server_default="1")


class NoticeRule(SQLModel, table=True):
    """Who is told, at which milestones before release, which events, and what they may see."""

    __tablename__ = "agreement_notice_rule"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    agreement_id: uuid.UUID = Field(foreign_key="agreement_agreement.id", index=True)
    recipient_organization_id: uuid.UUID | None = Field(default=None, foreign_key="agreement_organization.id")
    recipient_organization_type: OrganizationType | None = Field(
        default=None, sa_type=enum_type(OrganizationType)
    )
    milestones: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONType)
    event_types: list[str] = Field(default_factory=list, sa_type=JSONType)
    receipt_deadline_days: int
    escalation: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    data_sharing_profile: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_rule_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _rule_version}


class CaseRef(SQLModel, table=True):
    """agreement-api's read model of case-api's open cases, fed by ``case.*`` events (coverage)."""

    __tablename__ = "agreement_case_ref"

    case_id: uuid.UUID = Field(primary_key=True)
    responsible_kommunenummer: str | None = Field(default=None, max_length=4, index=True)
    status: str = Field(max_length=32)
    updated_at: datetime = Field(sa_type=UTCDateTime)
