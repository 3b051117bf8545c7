from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agreement_api.organizations.models import OrganizationType
from shared.free_text import FreeText, OptionalFreeText
from shared.identifiers import is_kommunenummer_format, is_valid_organization_number
from shared.municipalities import VALID_FROM, is_current_kommunenummer


def _current_kommunenummer(value: str | None) -> str | None:
    if value is None:
        return None
    if not is_kommunenummer_format(value):
        raise ValueError("a kommunenummer is four digits starting with a county code")
    if not is_current_kommunenummer(value):
        raise ValueError(f"{value} is not a current kommunenummer (list valid from {VALID_FROM.isoformat()})")
    return value


class OrganizationCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "prison",
                    "name": "Indre Østfold fengsel",
                    "parent_id": "5b1f3c2e-8a4d-4f6b-9c1e-2d7a8e9f0a11",
                    "enhetsnummer": "0312",
                    "security_level": "high",
                },
                {
                    "type": "municipality",
                    "name": "Halden kommune",
                    "kommunenummer": "3101",
                    "organization_number": "959159092",
                },
            ]
        },
        extra="forbid",
    )

    type: OrganizationType
    name: FreeText = Field(min_length=2, max_length=200, examples=["Indre Østfold fengsel"])
    organization_number: str | None = Field(None, examples=["974760673"])
    kommunenummer: str | None = Field(None, examples=["0301"])
    enhetsnummer: str | None = Field(None, pattern=r"^\d{4}$", examples=["0312"])
    security_level: Literal["high", "lower", "transitional"] | None = None
    parent_id: uuid.UUID | None = None

    @field_validator("organization_number")
    @classmethod
    def _check_orgnr(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_organization_number(value):
            raise ValueError("not a valid organization number (9 digits, mod-11 check digit)")
        return value

    @field_validator("kommunenummer")
    @classmethod
    def _check_kommunenummer(cls, value: str | None) -> str | None:
        return _current_kommunenummer(value)

    @model_validator(mode="after")
    def _type_specific(self) -> Self:
        if self.type in (OrganizationType.MUNICIPALITY, OrganizationType.DISTRICT) and not self.kommunenummer:
            raise ValueError("a municipality or district needs its kommunenummer")
        if self.type is OrganizationType.NAV_OFFICE and not self.enhetsnummer:
            raise ValueError("a NAV office needs its enhetsnummer")
        if self.security_level is not None and self.type is not OrganizationType.PRISON:
            raise ValueError("only a prison has a security level")
        return self


class OrganizationRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "b9521491-4762-4b7d-98b4-a7582868478d",
                    "type": "municipality",
                    "name": "Halden kommune",
                    "organization_number": None,
                    "kommunenummer": "3101",
                    "enhetsnummer": None,
                    "security_level": None,
                    "parent_id": None,
                    "serves_kommunenummer": [],
                    "created_at": "2026-12-06T18:00:19.526967Z",
                    "updated_at": "2026-12-06T18:00:19.526981Z",
                    "version": 1,
                }
            ]
        },
        from_attributes=True,
    )

    id: uuid.UUID
    type: OrganizationType
    name: str
    organization_number: str | None
    kommunenummer: str | None
    enhetsnummer: str | None
    security_level: str | None
    parent_id: uuid.UUID | None
    serves_kommunenummer: list[str] = Field(
        default_factory=list, description="NAV offices: municipalities served."
    )
    created_at: datetime
    updated_at: datetime
    version: int


class OrganizationUpdate(BaseModel):
    """Fields PATCH may change; send only what changes. Needs If-Match."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Indre Østfold fengsel, avdeling Eidsberg", "security_level": "lower"}]
        },
        extra="forbid",
    )

    name: OptionalFreeText = Field(None, min_length=2, max_length=200)
    organization_number: str | None = None
    security_level: Literal["high", "lower", "transitional"] | None = None
    parent_id: uuid.UUID | None = None

    @field_validator("organization_number")
    @classmethod
    def _check_orgnr(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_organization_number(value):
            raise ValueError("not a valid organization number (9 digits, mod-11 check digit)")
        return value


class ServiceArea(BaseModel):
    """The municipalities a NAV office serves."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kommunenummer": ["3101", "3118"]}]}, extra="forbid"
    )

    kommunenummer: list[str] = Field(min_length=1, examples=[["3101", "3118"]])

    @field_validator("kommunenummer")
    @classmethod
    def _check_all(cls, values: list[str]) -> list[str]:
        checked = [_current_kommunenummer(value) for value in values]
        return sorted({value for value in checked if value})
