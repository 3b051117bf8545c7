"""What a recipient may answer to a notice, and what it reads back.

The named persons are the recipient's own staff (who takes the case on, and who stands in), never
the inmate. Their phone and email follow case-api's group member rules, because case-api adds the
contact to the case's responsibility group from the ``notice.receipt_accepted.v1`` event and must
not refuse what was accepted here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from notify_worker.receipts.models import ReceiptStatus
from shared.free_text import refuse_identity_number

# The same patterns as case-api's group members (case_api.group.schemas).
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+?[0-9 ()-]{3,40}$"

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


def _no_identity_number(value: str) -> str:
    # Free text travels in events and lands in the case group: refused like case-api's free text.
    return str(refuse_identity_number(value))


class StaffContact(BaseModel):
    """One of the recipient's staff: a name and at least one way to reach them."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    phone: str | None = Field(None, max_length=40, pattern=_PHONE)
    email: str | None = Field(None, max_length=200, pattern=_EMAIL)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        return _no_identity_number(value)

    @model_validator(mode="after")
    def _reachable(self) -> StaffContact:
        if self.phone is None and self.email is None:
            raise ValueError("Give a phone number, an email address or both")
        return self


class ReceivedCreate(BaseModel):
    """The recipient has the notice; the answer comes later."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["received"]


class AcceptedCreate(BaseModel):
    """The recipient takes the case on: a named contact person and a substitute."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["accepted"]
    contact: StaffContact = Field(
        description="Who takes the case on; added to the case's responsibility group."
    )
    substitute: StaffContact = Field(description="Who stands in for the contact person.")


class RejectedCreate(BaseModel):
    """The recipient declines, and says why. Name nobody, least of all the inmate."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["rejected"]
    reason: Reason

    @field_validator("reason")
    @classmethod
    def _plain_reason(cls, value: str) -> str:
        return _no_identity_number(value)


ReceiptCreate = Annotated[AcceptedCreate | ReceivedCreate | RejectedCreate, Field(discriminator="status")]

RECEIPT_EXAMPLES: dict[str, dict[str, Any]] = {
    "received": {"summary": "The notice arrived", "value": {"status": "received"}},
    "accepted": {
        "summary": "Taken on, with a contact person and a substitute",
        "value": {
            "status": "accepted",
            "contact": {
                "name": "Ola Hansen",
                "phone": "+47 22 00 00 00",
                "email": "ola.hansen@halden.kommune.no",
            },
            "substitute": {"name": "Eva Berg", "email": "eva.berg@halden.kommune.no"},
        },
    },
    "rejected": {
        "summary": "Declined, with a reason",
        "value": {
            "status": "rejected",
            "reason": "Not our municipality: the person is registered elsewhere.",
        },
    },
}


class ReceiptRead(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "61ddc8e3-2393-4d0a-a0e4-69d6f18675d4",
                    "notice_id": "2fe84840-a61e-4fb0-b009-538cb3088fb9",
                    "organization_id": "b9521491-4762-4b7d-98b4-a7582868478d",
                    "status": "accepted",
                    "contact": {
                        "name": "Ola Hansen",
                        "phone": "+47 22 00 00 00",
                        "email": "ola.hansen@halden.kommune.no",
                    },
                    "substitute": {"name": "Eva Berg", "phone": None, "email": "eva.berg@halden.kommune.no"},
                    "reason": None,
                    "submitted_by": "halden-fagsystem",
                    "received_at": "2026-12-06T18:00:20.252439Z",
                }
            ]
        },
        from_attributes=True,
    )

    id: uuid.UUID
    notice_id: uuid.UUID
    organization_id: uuid.UUID = Field(description="The recipient that answered.")
    status: ReceiptStatus
    contact: dict[str, Any] | None = Field(description="Accepted: the contact person (name, phone, email).")
    substitute: dict[str, Any] | None = Field(description="Accepted: who stands in for the contact person.")
    reason: str | None = Field(description="Rejected: why.")
    submitted_by: str = Field(description="The subject of the token that answered.")
    received_at: datetime


class ReceiptList(BaseModel):
    items: list[ReceiptRead] = Field(description="Oldest first: at most one `received` and one final answer.")
