from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from case_api.cases.models import (
    CaseStatus,
    MunicipalityStatus,
    PlanningBasis,
    PriorityGroup,
    ReleaseDestination,
)
from shared.free_text import OptionalFreeText


def _unique(values: list[PriorityGroup]) -> list[PriorityGroup]:
    return sorted(set(values), key=lambda group: group.value)


class CaseCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "person_id": "5b0c1f43-2f0e-4a0e-9d35-1f4f0f3b7c11",
                    "current_unit_id": "0d7d8a2e-7c1b-4c54-9a53-0a1b2c3d4e5f",
                    "planning_basis": "final_judgment",
                    "priority_groups": ["young_person"],
                    "release_destination": "municipality",
                }
            ]
        },
    )

    person_id: uuid.UUID
    current_unit_id: uuid.UUID = Field(description="The prison, probation office or transitional housing.")
    planning_basis: PlanningBasis
    opened_at: AwareDatetime | None = Field(
        None, description="Defaults to now; may not lie in the future; must carry its timezone."
    )
    priority_groups: list[PriorityGroup] = Field(default_factory=list)
    release_destination: ReleaseDestination = ReleaseDestination.MUNICIPALITY
    destination_note: OptionalFreeText = Field(None, max_length=500)
    nav_office_id: uuid.UUID | None = None

    @field_validator("priority_groups")
    @classmethod
    def _unique_groups(cls, values: list[PriorityGroup]) -> list[PriorityGroup]:
        return _unique(values)


class CaseUpdate(BaseModel):
    """Fields changed by PATCH; send only what changes. Needs If-Match."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "priority_groups": ["young_person"],
                    "release_destination": "municipality",
                    "destination_note": "Bor hos søster i Halden de første ukene.",
                }
            ]
        },
        extra="forbid",
    )

    priority_groups: list[PriorityGroup] | None = None
    release_destination: ReleaseDestination | None = None
    destination_note: OptionalFreeText = Field(None, max_length=500)
    nav_office_id: uuid.UUID | None = None

    @field_validator("priority_groups")
    @classmethod
    def _unique_groups(cls, values: list[PriorityGroup] | None) -> list[PriorityGroup] | None:
        return None if values is None else _unique(values)


class StatusChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"status": "planning", "reason": "Kartlegging ferdig, planlegging starter."}]
        },
        extra="forbid",
    )

    status: CaseStatus
    reason: OptionalFreeText = Field(None, max_length=1000)


class Transfer(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "to_unit_id": "5b1f3c2e-8a4d-4f6b-9c1e-2d7a8e9f0a11",
                    "reason": "Overført til lavere sikkerhetsnivå.",
                }
            ]
        },
        extra="forbid",
    )

    to_unit_id: uuid.UUID
    reason: OptionalFreeText = Field(None, max_length=1000)


class PersonSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    given_name: str
    family_name: str
    birth_date: date


class MunicipalityView(BaseModel):
    registered_kommunenummer: str | None
    intended_kommunenummer: str | None
    responsible_kommunenummer: str | None
    status: MunicipalityStatus
    note: str | None


class CaseRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "56858a05-57d8-4d06-a20b-6f12dddf43ec",
                    "person": {
                        "id": "5239615c-f02c-4c2f-a193-97d9c2361fd0",
                        "given_name": "Kari",
                        "family_name": "Nordmann",
                        "birth_date": "1988-05-17",
                    },
                    "current_unit_id": "f597a451-114b-4756-a9d2-586cac47f459",
                    "region_id": "2b1ae1cf-dc0a-49ea-b007-195758605aa6",
                    "planning_basis": "final_judgment",
                    "opened_at": "2026-12-06T18:00:20.017758Z",
                    "status": "intake",
                    "status_changed_at": "2026-12-06T18:00:20.017758Z",
                    "allowed_transitions": ["closed", "planning"],
                    "priority_groups": [],
                    "release_destination": "municipality",
                    "destination_note": None,
                    "municipality": {
                        "registered_kommunenummer": None,
                        "intended_kommunenummer": None,
                        "responsible_kommunenummer": "3101",
                        "status": "confirmed",
                        "note": None,
                    },
                    "nav_office_id": None,
                    "effective_release_date": None,
                    "closed_at": None,
                    "created_at": "2026-12-06T18:00:20.017950Z",
                    "updated_at": "2026-12-06T18:00:20.056631Z",
                    "version": 2,
                }
            ]
        }
    )

    id: uuid.UUID
    person: PersonSummary
    current_unit_id: uuid.UUID
    region_id: uuid.UUID | None
    planning_basis: PlanningBasis
    opened_at: datetime
    status: CaseStatus
    status_changed_at: datetime
    allowed_transitions: list[CaseStatus]
    priority_groups: list[PriorityGroup]
    release_destination: ReleaseDestination
    destination_note: str | None
    municipality: MunicipalityView
    nav_office_id: uuid.UUID | None
    effective_release_date: date | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
