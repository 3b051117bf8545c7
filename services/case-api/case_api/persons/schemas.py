from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.free_text import FreeText
from shared.identifiers import birth_date_of, is_valid_national_identity_number


class IdentityNumber(BaseModel):
    """A national identity number in a request body (never in a URL)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"identity_number": "15076500565"}]}, extra="forbid"
    )

    identity_number: SecretStr = Field(
        description="Fødselsnummer or D-number, 11 digits; checked by both mod-11 check digits.",
        examples=["15076500565"],
    )

    @field_validator("identity_number")
    @classmethod
    def _check_digits(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the number: error bodies must not carry it.
        if not is_valid_national_identity_number(value.get_secret_value()):
            raise ValueError("not a valid fødselsnummer or D-number (11 digits, both check digits)")
        return value


class PersonCreate(IdentityNumber):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"identity_number": "15076500565", "given_name": "Kari", "family_name": "Nordmann"}]
        }
    )

    given_name: FreeText = Field(min_length=1, max_length=200, examples=["Kari"])
    family_name: FreeText = Field(min_length=1, max_length=200, examples=["Nordmann"])
    birth_date: date | None = Field(None, description="Derived from the identity number when left out.")

    def resolved_birth_date(self) -> date:
        return self.birth_date or birth_date_of(self.identity_number.get_secret_value())


class PersonRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5239615c-f02c-4c2f-a193-97d9c2361fd0",
                    "given_name": "Kari",
                    "family_name": "Nordmann",
                    "birth_date": "1988-05-17",
                    "created_at": "2026-12-06T18:00:19.985678Z",
                }
            ]
        },
        from_attributes=True,
    )

    id: uuid.UUID
    given_name: str
    family_name: str
    birth_date: date
    created_at: datetime


class PersonMatch(BaseModel):
    """A lookup's answer. The id is for every caller who registers persons, so that it opens a case
    for the person instead of registering them twice. Name, birth date and `created_at` are only
    for a caller who may read the person (`GET /persons/{id}`); for others they are left out and
    `details_withheld` is true."""

    id: uuid.UUID
    details_withheld: bool = Field(
        description="True when the caller may not read this person: only the id is answered."
    )
    given_name: str | None = None
    family_name: str | None = None
    birth_date: date | None = None
    created_at: datetime | None = None
