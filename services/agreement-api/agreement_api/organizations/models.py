from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, enum_type, new_id, utcnow
from shared.directory import OrganizationType

__all__ = ["NavServiceArea", "Organization", "OrganizationType"]


_organization_version = Column("version", Integer, nullable=False, server_default="1")


class Organization(SQLModel, table=True):
    __tablename__ = "agreement_organization"
    __table_args__ = (
        UniqueConstraint("kommunenummer", "type"),
        UniqueConstraint("enhetsnummer"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    type: OrganizationType = Field(sa_type=enum_type(OrganizationType), index=True)
    name: str = Field(max_length=200)
    organization_number: str | None = Field(default=None, max_length=9, unique=True)
    kommunenummer: str | None = Field(default=None, max_length=4)
    enhetsnummer: str | None = Field(default=None, max_length=4)
    security_level: str | None = Field(default=None, max_length=16)
    parent_id: uuid.UUID | None = Field(default=None, foreign_key="agreement_organization.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    version: int = Field(default=1, sa_column=_organization_version)

    __mapper_args__: ClassVar[dict[str, Any]] = {"version_id_col": _organization_version}


class NavServiceArea(SQLModel, table=True):
    """A municipality a NAV office serves (an office may serve several; hierarchy NAV -> municipalities)."""

    __tablename__ = "agreement_nav_service_area"
    __table_args__ = (UniqueConstraint("nav_office_id", "kommunenummer"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    nav_office_id: uuid.UUID = Field(foreign_key="agreement_organization.id", index=True)
    kommunenummer: str = Field(max_length=4, index=True)
