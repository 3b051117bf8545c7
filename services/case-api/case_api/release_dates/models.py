from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, enum_type, new_id, utcnow


class ReleaseDateKind(StrEnum):
    EARLIEST = "earliest"  # tidligste løslatelse
    TWO_THIRDS = "two_thirds"  # 2/3-tid: parole (prøveløslatelse) is considered
    EXPECTED = "expected"  # what planning currently expects
    CONFIRMED = "confirmed"  # decided; the planning date once it exists


class ReleaseDateCertainty(StrEnum):
    ESTIMATED = "estimated"
    PROBABLE = "probable"
    CERTAIN = "certain"


class ReleaseDateSource(StrEnum):
    JUDGMENT = "judgment"
    PRISON_ADMINISTRATION = "prison_administration"
    COURT = "court"
    PAROLE_DECISION = "parole_decision"
    COORDINATOR = "coordinator"
    OTHER = "other"


_CURRENT = "superseded_at IS NULL"


class ReleaseDate(SQLModel, table=True):
    """One release date of one kind, as recorded. Append-only: a new date of a kind supersedes the
    previous one (``superseded_at`` set), so each kind has at most one current row."""

    __tablename__ = "case_release_date"
    __table_args__ = (
        Index("ix_case_release_date_case_at", "case_id", "recorded_at"),
        Index(
            "uq_case_release_date_current",
            "case_id",
            "kind",
            unique=True,
            postgresql_where=text(_CURRENT),
            sqlite_where=text(_CURRENT),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id")
    kind: ReleaseDateKind = Field(sa_type=enum_type(ReleaseDateKind))
    date: dt.date
    certainty: ReleaseDateCertainty = Field(sa_type=enum_type(ReleaseDateCertainty))
    source: ReleaseDateSource = Field(sa_type=enum_type(ReleaseDateSource))
    note: str | None = Field(default=None, max_length=1000)
    recorded_by: str = Field(max_length=200)
    recorded_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    superseded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
