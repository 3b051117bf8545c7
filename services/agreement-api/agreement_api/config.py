from __future__ import annotations

from functools import lru_cache
from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import CommaList, ServiceSettings, deploy

# Development-only Fernet key: public, worthless, refused when env=production.
DEV_WEBHOOK_KEY_ENCRYPTION_KEY = "ZGV2LW9ubHktd2ViaG9vay1rZXktZW5jcnlwdGlvbiE="


class Settings(ServiceSettings):
    """agreement-api settings (environment prefix ``AGREEMENT_API_``)."""

    model_config = SettingsConfigDict(env_prefix="AGREEMENT_API_", extra="ignore", validate_default=True)

    port: int = Field(8002, ge=0, le=65535, description="HTTP port.")
    allow_private_webhook_urls: bool = Field(
        False, description="Allow webhook URLs on private or loopback addresses (dev/test only)."
    )
    allow_http_webhooks: bool = Field(
        False, description="Allow plain http:// webhook URLs (dev/test only; production needs https)."
    )
    webhook_key_encryption_keys: CommaList = Field(
        default_factory=lambda: [DEV_WEBHOOK_KEY_ENCRYPTION_KEY],
        description="Fernet keys (comma-separated) encrypting webhook signing secrets; the first encrypts, all decrypt (rotation).",
        json_schema_extra=deploy("secret"),
    )
    idempotency_ttl_hours: int = Field(24, ge=1, description="How long an Idempotency-Key answer is kept.")
    queue: str = Field("agreement-api.events", description="agreement-api's RabbitMQ queue (case events).")
    binding_keys: CommaList = Field(
        default_factory=lambda: ["case.#"],
        description="Routing keys agreement-api consumes (comma-separated or JSON list).",
    )

    @field_validator("webhook_key_encryption_keys")
    @classmethod
    def _at_least_one_key(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one webhook key encryption key is needed")
        return value

    @model_validator(mode="after")
    def _no_dev_settings_in_production(self) -> Self:
        if self.env == "production":
            if DEV_WEBHOOK_KEY_ENCRYPTION_KEY in self.webhook_key_encryption_keys:
                raise ValueError(
                    f"{self.variable('webhook_key_encryption_keys')}: the development webhook key "
                    "encryption key must not be used in production"
                )
            for flag in ("allow_http_webhooks", "allow_private_webhook_urls"):
                if getattr(self, flag):
                    raise ValueError(
                        f"{self.variable(flag)}: plain-http and private webhook URLs are for dev/test only"
                    )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
