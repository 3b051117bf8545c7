"""The event envelope every service publishes and consumes.

``subject`` is a case or resource reference, never a national identity number. ``type`` is
dot-separated and versioned (``case.release_date_changed.v1``) and doubles as the routing key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.context import current_correlation_id
from shared.db import utcnow


class EventEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="Unique per event; consumers dedupe on it.")
    type: str = Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.v[0-9]+$", examples=["case.opened.v1"])
    occurred_at: datetime = Field(default_factory=utcnow)
    source: str = Field(examples=["case-api"])
    subject: str = Field(description="Resource reference, e.g. case id.", examples=["case/0f4e…"])
    correlation_id: str | None = Field(default_factory=current_correlation_id)
    data: dict[str, Any] = Field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return self.type
