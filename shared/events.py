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
    """What every event on the bus is wrapped in; ``data`` is the payload its ``type`` names."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, description="Unique per event; consumers deduplicate on it."
    )
    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*\.v[0-9]+$",
        examples=["case.opened.v1"],
        description="Dot-separated, versioned event type; also the routing key.",
    )
    occurred_at: datetime = Field(default_factory=utcnow)
    source: str = Field(examples=["case-api"], description="The publishing service.")
    subject: str = Field(
        description="Resource reference such as `case/<id>` or `organization/<id>`; never a national "
        "identity number.",
        examples=["case/0f4e…"],
    )
    correlation_id: str | None = Field(
        default_factory=current_correlation_id,
        description="Carried from the request that caused the event to every log line and webhook after it.",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The payload of the event's type.")

    @property
    def routing_key(self) -> str:
        return self.type
