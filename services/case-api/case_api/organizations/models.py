"""case-api's copy of the organization directory (owned by agreement-api, fed by its events).

Access rules need to know an organization's type, region and kommunenummer on every request;
keeping a local read model avoids a synchronous call to agreement-api on the hot path.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, utcnow


class OrganizationRef(SQLModel, table=True):
    __tablename__ = "case_organization_ref"

    id: uuid.UUID = Field(primary_key=True)
    type: str = Field(max_length=32, index=True)
    name: str = Field(max_length=200)
    parent_id: uuid.UUID | None = Field(default=None, index=True)
    kommunenummer: str | None = Field(default=None, max_length=4, index=True)
    enhetsnummer: str | None = Field(default=None, max_length=4)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
