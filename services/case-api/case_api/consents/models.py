from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, enum_type, new_id, utcnow


class ConsentBasis(StrEnum):
    CONSENT = "consent"  # the inmate's own, specific consent
    LEGAL_BASIS = "legal_basis"  # disclosure allowed by law; the reference says which


class Consent(SQLModel, table=True):
    """A recorded basis for telling organizations about parts of a case.

    The scope is in child rows (organizations, organization types, domains) so that "may X see
    domain Y now?" is one indexed query on PostgreSQL and SQLite alike.
    """

    __tablename__ = "case_consent"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="case_case.id", index=True)
    basis: ConsentBasis = Field(sa_type=enum_type(ConsentBasis))
    legal_reference: str | None = Field(default=None, max_length=300)
    given_at: datetime = Field(sa_type=UTCDateTime)
    withdrawn_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawal_reason: str | None = Field(default=None, max_length=500)
    note: str | None = Field(default=None, max_length=1000)
    recorded_by: str = Field(max_length=200)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    withdrawn_recorded_by: str | None = Field(default=None, max_length=200)


class ConsentRecipient(SQLModel, table=True):
    """Who a consent covers: one organization, or every organization of a type."""

    __tablename__ = "case_consent_recipient"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    consent_id: uuid.UUID = Field(foreign_key="case_consent.id", index=True)
    organization_id: uuid.UUID | None = Field(default=None, index=True)
    organization_type: str | None = Field(default=None, max_length=32)


class ConsentDomain(SQLModel, table=True):
    """Which reintegration domains a consent covers."""

    __tablename__ = "case_consent_domain"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    consent_id: uuid.UUID = Field(foreign_key="case_consent.id", index=True)
    domain: str = Field(max_length=40)
