from __future__ import annotations

import uuid
from datetime import date, datetime
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from case_api.domains.models import Domain
from case_api.group.models import GroupRole
from shared.free_text import FreeText, OptionalFreeText

_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+?[0-9 ()-]{3,40}$"

# Fields PATCH may set but never to null.
_NOT_NULL = ("person_name", "role", "is_chair", "member_from", "post_release_contact")


class MemberCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"person_name": "Kari Nordmann", "role": "inmate"},
                {
                    "organization_id": "0d7d8a2e-7c1b-4c54-9a53-0a1b2c3d4e5f",
                    "person_name": "Ola Hansen",
                    "role": "municipality_social_services",
                    "post_release_contact": True,
                    "contact_phone": "+47 22 00 00 00",
                    "contact_email": "ola.hansen@oslo.kommune.no",
                },
            ]
        },
    )

    organization_id: uuid.UUID | None = Field(
        None, description="The member's organization; none for the inmate and for private persons."
    )
    person_name: FreeText = Field(min_length=1, max_length=200)
    role: GroupRole
    is_chair: bool | None = Field(
        None,
        description="Only the inmate chairs. Left out, the inmate member chairs when nobody else does.",
    )
    member_from: date | None = Field(None, description="Defaults to today.")
    member_until: date | None = Field(None, description="Last day of membership; null is open-ended.")
    post_release_contact: bool = Field(False, description="A contact for the person after release.")
    contact_phone: str | None = Field(None, max_length=40, pattern=_PHONE)
    contact_email: str | None = Field(None, max_length=200, pattern=_EMAIL)


class MemberUpdate(BaseModel):
    """Fields changed by PATCH; send only what changes. End a membership by setting `member_until`.
    Needs If-Match with the member's ETag."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"member_until": "2027-03-01"}, {"post_release_contact": True}],
        },
    )

    organization_id: uuid.UUID | None = None
    person_name: OptionalFreeText = Field(None, min_length=1, max_length=200)
    role: GroupRole | None = None
    is_chair: bool | None = None
    member_from: date | None = None
    member_until: date | None = None
    post_release_contact: bool | None = None
    contact_phone: str | None = Field(None, max_length=40, pattern=_PHONE)
    contact_email: str | None = Field(None, max_length=200, pattern=_EMAIL)

    @model_validator(mode="after")
    def _no_null_for_required(self) -> MemberUpdate:
        for name in _NOT_NULL:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class MemberRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    organization_id: uuid.UUID | None
    person_name: str
    role: GroupRole
    is_chair: bool
    member_from: date
    member_until: date | None
    active: bool = Field(description="A member today: from `member_from` through `member_until`.")
    post_release_contact: bool
    contact_phone: str | None
    contact_email: str | None
    added_by: str
    added_at: datetime
    updated_at: datetime
    version: int
    etag: str = Field(description="Send as If-Match to change this member.")


class GroupRead(BaseModel):
    case_id: uuid.UUID
    chair_member_id: uuid.UUID | None = Field(description="The active member who chairs, if any.")
    members: list[MemberRead] = Field(description="Active and past members.")


def _https_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("video_link must be an https URL")
    return value


class MeetingCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "starts_at": "2027-01-14T10:00:00+01:00",
                    "duration_minutes": 90,
                    "place": "Oslo fengsel, møterom 2",
                    "video_link": "https://video.example.no/room/4711",
                    "invited_member_ids": ["5b0c1f43-2f0e-4a0e-9d35-1f4f0f3b7c11"],
                }
            ]
        },
    )

    starts_at: AwareDatetime
    duration_minutes: int = Field(ge=5, le=480)
    place: OptionalFreeText = Field(None, min_length=1, max_length=300)
    video_link: str | None = Field(None, max_length=500, description="An https URL.")
    invited_member_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=50, description="Members of this case's group."
    )
    minutes_reference: OptionalFreeText = Field(
        None, max_length=300, description="Where the minutes are filed."
    )

    @field_validator("video_link")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        return _https_url(value)

    @model_validator(mode="after")
    def _somewhere(self) -> MeetingCreate:
        if self.place is None and self.video_link is None:
            raise ValueError("Give a place, a video link or both")
        return self


class AttendanceItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID
    attended: bool | None = Field(None, description="Null: not recorded (e.g. apologies sent in advance).")
    apologies: bool = Field(False, description="Sent apologies (forfall).")
    note: OptionalFreeText = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _not_both(self) -> AttendanceItem:
        if self.attended and self.apologies:
            raise ValueError("A member who attended did not send apologies")
        return self


class AttendanceUpdate(BaseModel):
    """The whole attendance record: members left out count as not recorded. Needs If-Match."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "attendance": [
                        {"member_id": "5b0c1f43-2f0e-4a0e-9d35-1f4f0f3b7c11", "attended": True},
                        {
                            "member_id": "0d7d8a2e-7c1b-4c54-9a53-0a1b2c3d4e5f",
                            "attended": False,
                            "apologies": True,
                            "note": "Sick",
                        },
                    ]
                }
            ]
        },
    )

    attendance: list[AttendanceItem] = Field(max_length=100)

    @field_validator("attendance")
    @classmethod
    def _each_member_once(cls, items: list[AttendanceItem]) -> list[AttendanceItem]:
        ids = [item.member_id for item in items]
        if len(ids) != len(set(ids)):
            raise ValueError("Each member may appear once")
        return items


class DecisionCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "domain": "housing",
                    "decision": "The municipality offers a flat with follow-up from release day.",
                    "responsible_member_id": "0d7d8a2e-7c1b-4c54-9a53-0a1b2c3d4e5f",
                }
            ]
        },
    )

    domain: Domain
    decision: FreeText = Field(min_length=1, max_length=4000)
    responsible_member_id: uuid.UUID | None = None


class ParticipantRead(BaseModel):
    member_id: uuid.UUID
    role: GroupRole
    person_name: str
    invited: bool
    attended: bool | None
    apologies: bool
    note: str | None


class DecisionRead(BaseModel):
    id: uuid.UUID
    meeting_id: uuid.UUID
    domain: Domain
    decision: str
    responsible_member_id: uuid.UUID | None
    created_by: str
    created_at: datetime


class MeetingRead(BaseModel):
    id: uuid.UUID
    case_id: uuid.UUID
    starts_at: datetime
    duration_minutes: int
    place: str | None
    video_link: str | None
    minutes_reference: str | None
    called_by: str
    created_at: datetime
    updated_at: datetime
    attendance_recorded: bool
    participants: list[ParticipantRead]
    absent_without_apologies: list[uuid.UUID] = Field(
        description="Once attendance is recorded: members who neither attended nor sent apologies."
    )
    decisions: list[DecisionRead] = Field(description="In domain order, then as recorded.")
    version: int
    etag: str = Field(description="Send as If-Match to record attendance.")
