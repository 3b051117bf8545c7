from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Index, Integer, text
from sqlmodel import Field, SQLModel

from shared.db import JSONType, UTCDateTime, enum_type, new_id, utcnow


class CaseStatus(StrEnum):
    INTAKE = "intake"
    PLANNING = "planning"
    RELEASE_READY = "release_ready"
    RELEASED = "released"
    FOLLOW_UP = "follow_up"
    CLOSED = "closed"


class PlanningBasis(StrEnum):
    FINAL_JUDGMENT = "final_judgment"  # rettskraftig dom
    REMAND_REQUEST = "remand_request"  # a remand prisoner asked for planning


class PriorityGroup(StrEnum):
    REMAND = "remand"
    PREVENTIVE_DETENTION = "preventive_detention"
    SAMI_SPEAKER = "sami_speaker"
    FOREIGN_NATIONAL = "foreign_national"
    WOMAN = "woman"
    YOUNG_PERSON = "young_person"
    MENTAL_ILLNESS = "mental_illness"


class ReleaseDestination(StrEnum):
    MUNICIPALITY = "municipality"
    ABROAD = "abroad"
    DEPORTATION = "deportation"
    TREATMENT_INSTITUTION = "treatment_institution"  # straffegjennomføringsloven § 12
    HOME_DETENTION = "home_detention"  # § 16


class MunicipalityStatus(StrEnum):
    UNRESOLVED = "unresolved"
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    KOMMUNELOS = "kommunelos"  # no municipality takes responsibility
    DISPUTED = "disputed"


_case_version = Column("version", Integer, nullable=False)


class Case(SQLModel, table=True):
    __tablename__ = "case_case"
    __table_args__ = (
        Index("ix_case_case_list", "region_id", "opened_at", "id"),
        # The list without a region (admin, auditor, other filters): newest first by keyset.
        Index("ix_case_case_opened", "opened_at", "id"),
        Index("ix_case_case_release", "effective_release_date", "id"),
        # One open case per person (cases.lifecycle.OPEN): concurrent opens cannot both commit.
        Index(
            "uq_case_case_person_open",
            "person_id",
            unique=True,
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="case_person.id", index=True)
    current_unit_id: uuid.UUID = Field(index=True)
    region_id: uuid.UUID | None = Field(default=None)
    planning_basis: PlanningBasis = Field(sa_type=enum_type(PlanningBasis))
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    status: CaseStatus = Field(default=CaseStatus.INTAKE, sa_type=enum_type(CaseStatus), index=True)
    status_changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    priority_groups: list[str] = Field(default_factory=list, sa_type=JSONType)
    release_destination: ReleaseDestination = Field(
        default=ReleaseDestination.MUNICIPALITY, sa_type=enum_type(ReleaseDestination)
    )
    destination_note: str | None = Field(default=None, max_length=500)
    registered_kommunenummer: str | None = Field(default=None, max_length=4)
    intended_kommunenummer: str | None = Field(default=None, max_length=4)
    responsible_kommunenummer: str | None = Field(default=None, max_length=4, index=True)
    municipality_status: MunicipalityStatus = Field(
        default=MunicipalityStatus.UNRESOLVED, sa_type=enum_type(MunicipalityStatus)
    )
    municipality_note: str | None = Field(default=None, max_length=1000)
    nav_office_id: uuid.UUID | None = Field(default=None, index=True)
    # The date release planning aims at: the confirmed date, else the expected one.
    effective_release_date: date | None = Field(default=None)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Optimistic concurrency: every UPDATE says WHERE version = <the one read>; the ETag is built
    # from it, and a writer that lost the race gets StaleDataError, rendered as 412.
    version: int = Field(default=1, sa_column=_case_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _case_version}
