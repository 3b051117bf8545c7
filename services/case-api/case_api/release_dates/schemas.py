from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from case_api.release_dates.models import ReleaseDateCertainty, ReleaseDateKind, ReleaseDateSource
from shared.free_text import OptionalFreeText


class ReleaseDateSet(BaseModel):
    """A new date for one kind; it replaces that kind's current date, which stays in the history."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "expected",
                    "date": "2025-03-14",
                    "certainty": "probable",
                    "source": "prison_administration",
                    "note": "Parole likely at two thirds.",
                },
                {
                    "kind": "confirmed",
                    "date": "2025-03-14",
                    "certainty": "certain",
                    "source": "parole_decision",
                },
            ]
        },
    )

    kind: ReleaseDateKind
    date: dt.date = Field(
        description="Not before the day the case opened, at most 30 years ahead; earliest <= two_thirds "
        "<= expected."
    )
    certainty: ReleaseDateCertainty = Field(description="A confirmed date must be certain.")
    source: ReleaseDateSource
    note: OptionalFreeText = Field(None, max_length=1000)


class ReleaseDateRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: ReleaseDateKind
    date: dt.date
    certainty: ReleaseDateCertainty
    source: ReleaseDateSource
    note: str | None
    recorded_by: str
    recorded_at: dt.datetime


class CurrentReleaseDates(BaseModel):
    """The current date of each kind; null when none is recorded."""

    earliest: ReleaseDateRead | None = None
    two_thirds: ReleaseDateRead | None = None
    expected: ReleaseDateRead | None = None
    confirmed: ReleaseDateRead | None = None


class ReleaseDateHistoryEntry(ReleaseDateRead):
    previous_date: dt.date | None = Field(description="The date of this kind that this one replaced.")
    superseded_at: dt.datetime | None = Field(description="When a later date replaced this one.")
    current: bool


_EXPECTED_EXAMPLE: dict[str, Any] = {
    "id": "89efcc3f-61d2-4aac-9fe2-04d6d0118157",
    "kind": "expected",
    "date": "2026-12-26",
    "certainty": "probable",
    "source": "prison_administration",
    "note": None,
    "recorded_by": "koordinator-region-ost",
    "recorded_at": "2026-12-06T18:00:20.068946Z",
}
_DATES_EXAMPLE: dict[str, Any] = {
    "case_id": "56858a05-57d8-4d06-a20b-6f12dddf43ec",
    "effective_release_date": "2026-12-26",
    "current": {"earliest": None, "two_thirds": None, "expected": _EXPECTED_EXAMPLE, "confirmed": None},
}


class ReleaseDates(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_DATES_EXAMPLE]})

    case_id: uuid.UUID
    effective_release_date: dt.date | None = Field(
        description="What planning aims at: the confirmed date, else the expected one."
    )
    current: CurrentReleaseDates


class ReleaseDateHistory(ReleaseDates):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **_DATES_EXAMPLE,
                    "history": [
                        {**_EXPECTED_EXAMPLE, "previous_date": None, "superseded_at": None, "current": True}
                    ],
                }
            ]
        }
    )

    history: list[ReleaseDateHistoryEntry] = Field(description="Every date ever recorded, newest first.")
