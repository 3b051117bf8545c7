from __future__ import annotations

from functools import lru_cache
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.contracts import events as contracts
from shared.settings import CommaList, ServiceSettings, deploy

# Development-only secrets: public, worthless, refused when env=production.
DEV_IDENTITY_HASH_KEY = "dev-only-identity-number-hash-key"
DEV_IDENTITY_ENCRYPTION_KEY = "ZGV2LW9ubHktaWRlbnRpdHktbnVtYmVyLWtleS0zMmI="


class Settings(ServiceSettings):
    """case-api settings (environment prefix ``CASE_API_``)."""

    model_config = SettingsConfigDict(env_prefix="CASE_API_", extra="ignore", validate_default=True)

    port: int = Field(8001, ge=0, le=65535, description="HTTP port.")
    identity_hash_key: str = Field(
        DEV_IDENTITY_HASH_KEY,
        min_length=16,
        description="Secret for the keyed hash (HMAC-SHA256) that finds a person by identity number.",
        json_schema_extra=deploy("secret"),
    )
    identity_encryption_keys: CommaList = Field(
        default_factory=lambda: [DEV_IDENTITY_ENCRYPTION_KEY],
        description="Fernet keys (comma-separated) encrypting identity numbers; the first encrypts, all decrypt (rotation).",
        json_schema_extra=deploy("secret"),
    )
    queue: str = Field(
        "case-api.events", description="case-api's RabbitMQ queue (organization directory events)."
    )
    binding_keys: CommaList = Field(
        default_factory=lambda: ["organization.#", contracts.NoticeReceiptAccepted.TYPE],
        description="Routing keys case-api consumes (comma-separated or JSON list).",
    )
    idempotency_ttl_hours: int = Field(24, ge=1, description="How long an Idempotency-Key answer is kept.")
    agreement_api_url: str = Field(
        "http://127.0.0.1:8002",
        description="Base URL of agreement-api, asked which rules apply when a notice's detail is fetched.",
        json_schema_extra=deploy("peer"),
    )
    service_token: SecretStr = Field(
        SecretStr(""),
        description=(
            "Bearer token (role `service`) for calls to agreement-api. "
            "Empty in dev/test: one is minted with the development key."
        ),
        json_schema_extra=deploy("secret"),
    )
    http_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of calls to agreement-api.")

    def bearer_token(self) -> str:
        """The configured service token; in dev/test, when empty, one minted with the dev key."""
        token = self.service_token.get_secret_value()
        if token:
            return token
        if self.env == "production":
            raise ValueError("CASE_API_SERVICE_TOKEN must be set in production")
        from shared.auth import mint_token

        # Signed with the public development key, so its lifetime protects nothing; a year keeps a
        # long-running dev or embedded instance from losing its peers after a day.
        return mint_token(role="service", subject="case-api", ttl_seconds=365 * 24 * 3600)

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Self:
        if self.env != "production":
            return self
        if self.identity_hash_key == DEV_IDENTITY_HASH_KEY:
            raise ValueError(
                f"{self.variable('identity_hash_key')}: the development identity-number keys must not "
                "be used in production"
            )
        if DEV_IDENTITY_ENCRYPTION_KEY in self.identity_encryption_keys:
            raise ValueError(
                f"{self.variable('identity_encryption_keys')}: the development identity-number keys "
                "must not be used in production"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
