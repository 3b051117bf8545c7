from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from case_api.consents.models import ConsentBasis
from case_api.domains.models import Domain
from shared.directory import OrganizationType
from shared.free_text import OptionalFreeText

T = TypeVar("T")


def _unique_in_order(values: list[T]) -> list[T]:
    return list(dict.fromkeys(values))


class ConsentCreate(BaseModel):
    """A consent (or a legal basis) to tell organizations about parts of a case."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "basis": "consent",
                    "organization_ids": ["6f1c2b1e-4a7d-4c1e-9d0b-2a3f4e5d6c7b"],
                    "organization_types": ["nav_office"],
                    "domains": ["housing", "work", "income"],
                    "note": "Signed form scanned into the prison's archive.",
                },
                {
                    "basis": "legal_basis",
                    "legal_reference": "straffegjennomføringsloven § 4 tredje ledd",
                    "organization_types": ["municipality"],
                    "domains": "all",
                },
            ]
        },
    )

    basis: ConsentBasis = Field(
        description="`consent`: the inmate's own consent. `legal_basis`: disclosure allowed by law."
    )
    legal_reference: OptionalFreeText = Field(
        None,
        min_length=1,
        max_length=300,
        description="The law that allows disclosure. Required for `legal_basis`, not allowed for `consent`.",
    )
    organization_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=100, description="Organizations (from the directory) covered."
    )
    organization_types: list[OrganizationType] = Field(
        default_factory=list, description="Every organization of these types is covered."
    )
    domains: list[Domain] | Literal["all"] = Field(
        description='The reintegration domains covered, or `"all"` for every domain.'
    )
    given_at: AwareDatetime | None = Field(
        None, description="When the consent was given; defaults to now and may not lie in the future."
    )
    note: OptionalFreeText = Field(None, max_length=1000)

    @field_validator("organization_types")
    @classmethod
    def _unique_types(cls, values: list[OrganizationType]) -> list[OrganizationType]:
        return _unique_in_order(values)

    @field_validator("domains")
    @classmethod
    def _non_empty_domains(cls, value: list[Domain] | Literal["all"]) -> list[Domain] | Literal["all"]:
        if value == "all":
            return value
        if not value:
            raise ValueError('name at least one domain, or "all"')
        return _unique_in_order(list(value))

    def resolved_domains(self) -> list[Domain]:
        return list(Domain) if self.domains == "all" else list(self.domains)


class ConsentWithdrawal(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reason": "Withdrawn orally at the status talk."}]}
    )

    reason: OptionalFreeText = Field(None, max_length=500)


class ConsentRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "a22ad587-b477-44fa-9d48-f63bc44ecba4",
                    "case_id": "56858a05-57d8-4d06-a20b-6f12dddf43ec",
                    "basis": "consent",
                    "legal_reference": None,
                    "organization_ids": ["b9521491-4762-4b7d-98b4-a7582868478d"],
                    "organization_types": [],
                    "domains": ["housing", "income"],
                    "given_at": "2026-12-06T18:00:20.121192Z",
                    "withdrawn_at": None,
                    "withdrawal_reason": None,
                    "note": None,
                    "recorded_by": "koordinator-region-ost",
                    "recorded_at": "2026-12-06T18:00:20.121192Z",
                    "withdrawn_recorded_by": None,
                    "active": True,
                }
            ]
        }
    )

    id: uuid.UUID
    case_id: uuid.UUID
    basis: ConsentBasis
    legal_reference: str | None
    organization_ids: list[uuid.UUID]
    organization_types: list[OrganizationType]
    domains: list[Domain]
    given_at: datetime
    withdrawn_at: datetime | None
    withdrawal_reason: str | None
    note: str | None
    recorded_by: str
    recorded_at: datetime
    withdrawn_recorded_by: str | None
    active: bool = Field(description="In force now: given, and not withdrawn.")


class ConsentList(BaseModel):
    items: list[ConsentRead]


class Decision(BaseModel):
    """May an organization receive a domain of a case at a moment, and on which basis."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "allowed": True,
                    "basis": "consent",
                    "consent_id": "0b8f8a62-1c1e-4d8e-8d0f-3f6f7d5e2a10",
                    "legal_reference": None,
                    "checked_at": "2026-11-23T10:15:00Z",
                },
                {
                    "allowed": False,
                    "basis": None,
                    "consent_id": None,
                    "legal_reference": None,
                    "checked_at": "2026-11-23T10:15:00Z",
                },
            ]
        }
    )

    allowed: bool
    basis: ConsentBasis | None = Field(description="The basis of the consent that allows it; null when not.")
    consent_id: uuid.UUID | None
    legal_reference: str | None = Field(description="Set when the basis is `legal_basis`.")
    checked_at: datetime = Field(description="The moment the answer holds for.")
