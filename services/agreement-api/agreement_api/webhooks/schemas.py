from __future__ import annotations

import re
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agreement_api.webhooks.models import EndpointState, KeyKind, KeyState
from shared.contracts import events as contracts
from shared.free_text import FreeText, OptionalFreeText

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\.v\d+$")


def _event_types(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    for value in values:
        if not EVENT_TYPE.match(value):
            raise ValueError(f"{value!r} is not an event type such as 'case.created.v1'")
    return sorted(set(values))


class WebhookEndpointCreate(BaseModel):
    """A new endpoint; its first signing key is made at once and its secret returned only now."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://integrasjon.halden.kommune.no/tilbake/webhooks",
                    "description": "Halden kommune, NAV-samarbeid",
                    "event_types": [contracts.CaseOpened.TYPE],
                    "rate_limit_per_minute": 120,
                    "key_kind": "hmac",
                }
            ]
        },
    )

    url: str = Field(max_length=2000, examples=["https://integrasjon.halden.kommune.no/tilbake/webhooks"])
    description: OptionalFreeText = Field(None, max_length=500)
    event_types: list[str] = Field(
        default_factory=list, max_length=100, description="Event types to deliver; empty means all."
    )
    rate_limit_per_minute: int = Field(60, ge=1, le=6000)
    key_kind: KeyKind = Field(KeyKind.HMAC, description="`hmac` (Standard Webhooks v1) or `ed25519` (v1a).")

    @field_validator("event_types")
    @classmethod
    def _check_event_types(cls, values: list[str]) -> list[str]:
        return _event_types(values) or []


class WebhookEndpointUpdate(BaseModel):
    """Fields PATCH may change; send only what changes. Needs If-Match."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"url": "https://mottak.halden.kommune.no/tilbake/webhooks", "rate_limit_per_minute": 120}
            ]
        },
        extra="forbid",
    )

    url: str | None = Field(None, max_length=2000)
    description: OptionalFreeText = Field(None, max_length=500)
    event_types: list[str] | None = Field(None, max_length=100)
    rate_limit_per_minute: int | None = Field(None, ge=1, le=6000)

    @field_validator("event_types")
    @classmethod
    def _check_event_types(cls, values: list[str] | None) -> list[str] | None:
        return _event_types(values)

    @field_validator("url", "rate_limit_per_minute")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value


class DisableRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "Receiver is being replaced"}]}, extra="forbid"
    )

    reason: FreeText = Field(min_length=2, max_length=500, examples=["Receiver is being replaced"])


class RotateRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"kind": "hmac", "overlap_hours": 24}]}, extra="forbid"
    )

    kind: KeyKind = KeyKind.HMAC
    overlap_hours: int = Field(
        24, ge=0, le=168, description="How long the old key(s) of this kind keep signing beside the new one."
    )


class WebhookEndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    state: EndpointState
    disabled_reason: str | None
    rate_limit_per_minute: int
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookKeyRead(BaseModel):
    """A key without its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: KeyKind
    state: KeyState
    public_key: str | None = Field(description="ed25519 only: `whpk_` + base64 public key to verify v1a.")
    fingerprint: str
    created_at: datetime
    not_before: datetime
    expires_at: datetime | None


class WebhookKeyWithSecret(WebhookKeyRead):
    secret: str | None = Field(
        description=(
            "Shown only in this answer: `whsec_…` (hmac) or `whsk_…` (ed25519 private key). "
            "Null in a replayed (Idempotency-Key) answer: rotate if it was lost."
        )
    )


class WebhookEndpointCreated(WebhookEndpointRead):
    key: WebhookKeyWithSecret


class KeyRotated(BaseModel):
    key: WebhookKeyWithSecret
    retiring: list[WebhookKeyRead] = Field(description="The previous keys of this kind and when they expire.")


class SigningKey(BaseModel):
    """A key valid at ``at``, with its secret, for notify-worker to sign with."""

    id: uuid.UUID
    kind: KeyKind
    secret: str
    public_key: str | None
    not_before: datetime
    expires_at: datetime | None


class SigningKeys(BaseModel):
    endpoint_id: uuid.UUID
    at: datetime
    keys: list[SigningKey]


class DeliveryResult(BaseModel):
    """What happened when a signed `webhook.test.v1` was sent."""

    message_id: str
    status_code: int | None = Field(description="The receiver's HTTP status; null when nothing was answered.")
    duration_ms: int
    error: str | None
