from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator

from case_api.cases.models import MunicipalityStatus
from shared.free_text import OptionalFreeText

KOMMUNENUMMER = r"^\d{4}$"


class MunicipalityRead(BaseModel):
    kommunenummer: str = Field(examples=["0301"])
    name: str = Field(examples=["Oslo"])
    county_code: str = Field(examples=["03"])


class MunicipalityList(BaseModel):
    valid_from: date = Field(description="The date the classification took effect.", examples=["2024-01-01"])
    classification: str
    items: list[MunicipalityRead]


class MunicipalityChange(BaseModel):
    """The case's municipalities and where responsibility stands. Replaces what was there: a field
    left out becomes empty."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "registered_kommunenummer": "3101",
                    "intended_kommunenummer": "0301",
                    "responsible_kommunenummer": "0301",
                    "status": "confirmed",
                    "note": "Oslo confirmed by letter 2024-05-02.",
                },
                {"registered_kommunenummer": None, "status": "kommunelos", "note": "No fixed address."},
            ]
        },
    )

    registered_kommunenummer: str | None = Field(
        None, pattern=KOMMUNENUMMER, description="Where the person is registered as living (folkeregistrert)."
    )
    intended_kommunenummer: str | None = Field(
        None, pattern=KOMMUNENUMMER, description="Where the person means to live after release."
    )
    responsible_kommunenummer: str | None = Field(
        None,
        pattern=KOMMUNENUMMER,
        description="The municipality responsible from release. Needed when proposed or confirmed; "
        "must be empty when kommunelos.",
    )
    status: MunicipalityStatus
    note: OptionalFreeText = Field(None, max_length=1000, description="Needed when disputed.")

    @model_validator(mode="after")
    def _blank_note_is_none(self) -> MunicipalityChange:
        if self.note is not None and not self.note.strip():
            self.note = None
        return self
