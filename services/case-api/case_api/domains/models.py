from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, enum_type, new_id, utcnow


class Domain(StrEnum):
    """The fixed set of reintegration domains (see docs/domains.md)."""

    HOUSING = "housing"
    WORK = "work"  # arbeid og NAVs tjenester
    INCOME = "income"  # inntekt og økonomi
    DEBT = "debt"  # gjeld og gjeldsrådgivning
    PHYSICAL_HEALTH = "physical_health"
    MENTAL_HEALTH = "mental_health"
    SUBSTANCE_TREATMENT = "substance_treatment"  # rus, TSB
    EDUCATION = "education"
    SOCIAL_SERVICES = "social_services"  # sosiale tjenester og individuell plan
    ID_PAPERS = "id_papers"
    NETWORK_FAMILY = "network_family"


HEALTH_DOMAINS = frozenset({Domain.PHYSICAL_HEALTH, Domain.MENTAL_HEALTH, Domain.SUBSTANCE_TREATMENT})


class DomainStatus(StrEnum):
    NOT_ASSESSED = "not_assessed"
    NEED_IDENTIFIED = "need_identified"
    IN_PROGRESS = "in_progress"
    ARRANGED = "arranged"
    NOT_NEEDED = "not_needed"
    DECLINED = "declined"
    AT_RISK = "at_risk"


# Statuses that count as "in place" for the readiness report.
SETTLED_STATUSES = frozenset({DomainStatus.ARRANGED, DomainStatus.NOT_NEEDED, DomainStatus.DECLINED})

_domain_version = Column("version", Integer, nullable=False)
_action_version = Column("version", Integer, nullable=False)


class CaseDomain(SQLModel, table=True):
    __tablename__ = "case_domain"
    __table_args__ = (UniqueConstraint("case_id", "domain"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id", index=True)
    domain: Domain = Field(sa_type=enum_type(Domain, length=40))
    status: DomainStatus = Field(default=DomainStatus.NOT_ASSESSED, sa_type=enum_type(DomainStatus))
    needs: str | None = Field(default=None, max_length=4000)
    goals: str | None = Field(default=None, max_length=4000)
    # Housing only: the only place arranged is a hostel (hospits), a known risk after release.
    hostel_only: bool = Field(default=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str | None = Field(default=None, max_length=200)
    version: int = Field(default=1, sa_column=_domain_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _domain_version}


class DomainAction(SQLModel, table=True):
    __tablename__ = "case_domain_action"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_domain_id: uuid.UUID = Field(foreign_key="case_domain.id", index=True)
    description: str = Field(max_length=2000)
    responsible_organization_id: uuid.UUID | None = None
    contact_name: str | None = Field(default=None, max_length=200)
    contact_phone: str | None = Field(default=None, max_length=40)
    contact_email: str | None = Field(default=None, max_length=200)
    due_date: date | None = None
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str | None = Field(default=None, max_length=200)
    # Its own ETag, so two people ticking off the same action cannot overwrite each other.
    version: int = Field(default=1, sa_column=_action_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _action_version}
