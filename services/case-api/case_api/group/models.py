"""The responsibility group (ansvarsgruppe) around one case, and its meetings."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from case_api.domains.models import Domain
from shared.db import UTCDateTime, enum_type, new_id, utcnow


class GroupRole(StrEnum):
    INMATE = "inmate"  # owns the plan and chairs the group
    COORDINATOR = "coordinator"
    CONTACT_OFFICER = "contact_officer"  # kontaktbetjent
    PRISON_SOCIAL_WORKER = "prison_social_worker"
    NAV = "nav"
    MUNICIPALITY_SOCIAL_SERVICES = "municipality_social_services"
    HEALTH = "health"
    TREATMENT = "treatment"
    POLICE = "police"
    EDUCATION = "education"
    NGO = "ngo"
    OTHER = "other"


# Roles whose mere membership says something about the person's health.
HEALTH_ROLES = frozenset({GroupRole.HEALTH, GroupRole.TREATMENT})

_member_version = Column("version", Integer, nullable=False)


class GroupMember(SQLModel, table=True):
    """One member of a case's responsibility group, for a period.

    ``member_until`` null means open-ended; a membership counts on every day from ``member_from``
    to ``member_until``, both included.
    """

    __tablename__ = "case_group_member"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id", index=True)
    # Null for the inmate and for private persons; otherwise an organization in the directory.
    organization_id: uuid.UUID | None = Field(default=None)
    person_name: str = Field(max_length=200)
    role: GroupRole = Field(sa_type=enum_type(GroupRole, length=40))
    is_chair: bool = Field(default=False)
    member_from: date
    member_until: date | None = Field(default=None)
    # Whom the person and the municipality contact after release.
    post_release_contact: bool = Field(default=False)
    contact_phone: str | None = Field(default=None, max_length=40)
    contact_email: str | None = Field(default=None, max_length=200)
    added_by: str = Field(max_length=200)
    added_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_member_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _member_version}


_meeting_version = Column("version", Integer, nullable=False)


class Meeting(SQLModel, table=True):
    __tablename__ = "case_meeting"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id", index=True)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    duration_minutes: int
    place: str | None = Field(default=None, max_length=300)
    video_link: str | None = Field(default=None, max_length=500)
    minutes_reference: str | None = Field(default=None, max_length=300)
    called_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_meeting_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _meeting_version}


class MeetingParticipant(SQLModel, table=True):
    """A member invited to, or present at, a meeting."""

    __tablename__ = "case_meeting_participant"
    __table_args__ = (UniqueConstraint("meeting_id", "member_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    meeting_id: uuid.UUID = Field(foreign_key="case_meeting.id", index=True)
    member_id: uuid.UUID = Field(foreign_key="case_group_member.id", index=True)
    invited: bool = Field(default=True)
    attended: bool | None = Field(default=None)  # null: not recorded yet
    apologies: bool = Field(default=False)  # forfall: sent apologies
    note: str | None = Field(default=None, max_length=1000)


class MeetingDecision(SQLModel, table=True):
    __tablename__ = "case_meeting_decision"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    meeting_id: uuid.UUID = Field(foreign_key="case_meeting.id", index=True)
    domain: Domain = Field(sa_type=enum_type(Domain, length=40))
    decision: str = Field(max_length=4000)
    responsible_member_id: uuid.UUID | None = Field(default=None, foreign_key="case_group_member.id")
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
