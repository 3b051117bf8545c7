from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from case_api.domains.models import Domain, DomainStatus
from shared.free_text import NoIdentityNumber, OptionalFreeText

# The Norwegian term for each domain, as the partners use it (see docs/domains.md).
NORWEGIAN_TERMS: dict[Domain, str] = {
    Domain.HOUSING: "bolig",
    Domain.WORK: "arbeid og NAVs tjenester",
    Domain.INCOME: "inntekt og økonomi",
    Domain.DEBT: "gjeld og gjeldsrådgivning",
    Domain.PHYSICAL_HEALTH: "somatisk helse",
    Domain.MENTAL_HEALTH: "psykisk helse",
    Domain.SUBSTANCE_TREATMENT: "rusbehandling (TSB)",
    Domain.EDUCATION: "utdanning og opplæring",
    Domain.SOCIAL_SERVICES: "sosiale tjenester og individuell plan",
    Domain.ID_PAPERS: "ID-papirer",
    Domain.NETWORK_FAMILY: "nettverk og familie",
}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 ()-]{2,38}$")]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may not be null; leave the field out to keep the current value")
    return value


class DomainUpdate(BaseModel):
    """The fields of one domain; send only what changes. Needs `If-Match` with the domain's ETag."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "status": "arranged",
                    "needs": "Has no place to live after release.",
                    "goals": "A flat with follow-up from the housing office.",
                    "hostel_only": False,
                }
            ]
        },
    )

    status: DomainStatus | None = None
    needs: OptionalFreeText = Field(
        None, max_length=4000, description="What the person needs; null clears it."
    )
    goals: OptionalFreeText = Field(
        None, max_length=4000, description="What is to be achieved; null clears it."
    )
    hostel_only: bool | None = Field(
        None,
        description="Housing only: the only place arranged is a hostel (hospits). "
        "True on any other domain is 422.",
    )

    @field_validator("status", "hostel_only")
    @classmethod
    def _required_when_sent(cls, value: Any) -> Any:
        return _not_null(value)


class ActionCreate(BaseModel):
    """One thing to be done in a domain, by whom and when."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "description": "Apply for municipal housing with follow-up",
                    "responsible_organization_id": "0d7d8a2e-7c1b-4c54-9a53-0a1b2c3d4e5f",
                    "contact_name": "Ola Saksbehandler",
                    "contact_phone": "+47 22 00 00 00",
                    "contact_email": "bolig@kommune.example.no",
                    "due_date": "2027-01-15",
                }
            ]
        },
    )

    description: Annotated[Text, NoIdentityNumber] = Field(max_length=2000)
    responsible_organization_id: uuid.UUID | None = Field(
        None, description="An organization in the directory that is responsible for the action."
    )
    contact_name: Annotated[Text | None, NoIdentityNumber] = Field(None, max_length=200)
    contact_phone: Phone | None = Field(None, max_length=40)
    contact_email: Email | None = None
    due_date: date | None = None


class ActionUpdate(BaseModel):
    """Change an action, mark it done (`done: true`) or reopen it (`done: false`)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"done": True}, {"due_date": "2027-02-01"}]}
    )

    description: Annotated[Text | None, NoIdentityNumber] = Field(None, max_length=2000)
    responsible_organization_id: uuid.UUID | None = None
    contact_name: Annotated[Text | None, NoIdentityNumber] = Field(None, max_length=200)
    contact_phone: Phone | None = Field(None, max_length=40)
    contact_email: Email | None = None
    due_date: date | None = None
    done: bool | None = Field(
        None, description="True marks the action done (sets done_at); false reopens it."
    )

    @field_validator("description", "done")
    @classmethod
    def _required_when_sent(cls, value: Any) -> Any:
        return _not_null(value)


class ActionRead(BaseModel):
    id: uuid.UUID
    domain: Domain
    description: str
    responsible_organization_id: uuid.UUID | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    due_date: date | None
    done: bool
    done_at: datetime | None
    overdue: bool = Field(description="Not done and the due date has passed.")
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str | None
    version: int
    etag: str = Field(description="Send as `If-Match` when changing this action.")


class DomainRead(BaseModel):
    domain: Domain
    term: str = Field(description="The Norwegian term for the domain.", examples=["bolig"])
    status: DomainStatus
    settled: bool = Field(description="The status counts as in place for the readiness report.")
    needs: str | None
    goals: str | None
    hostel_only: bool
    updated_at: datetime
    updated_by: str | None
    version: int
    etag: str = Field(description="Send as `If-Match` when changing this domain.")
    actions: list[ActionRead]


class DomainList(BaseModel):
    case_id: uuid.UUID
    items: list[DomainRead] = Field(description="The domains you may see, in the documented order.")
