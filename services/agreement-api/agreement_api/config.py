from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """agreement-api settings (environment prefix ``AGREEMENT_API_``)."""

    model_config = SettingsConfigDict(env_prefix="AGREEMENT_API_", extra="ignore", validate_default=True)

    port: int = Field(8002, ge=0, le=65535, description="HTTP port.")
    allow_private_webhook_urls: bool = Field(
        False, description="Allow webhook URLs on private or loopback addresses (dev/test only)."
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
