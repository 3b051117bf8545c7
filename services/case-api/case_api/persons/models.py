from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlmodel import Field, SQLModel

from shared.db import UTCDateTime, new_id, utcnow


class Person(SQLModel, table=True):
    __tablename__ = "case_person"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    given_name: str = Field(max_length=200)
    family_name: str = Field(max_length=200)
    birth_date: date
    # HMAC of the identity number: unique, so one person is registered once.
    identity_hash: str = Field(max_length=64, unique=True)
    identity_ciphertext: str = Field(max_length=400)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str = Field(max_length=200)
