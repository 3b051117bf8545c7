from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """case-api settings (environment prefix ``CASE_API_``)."""

    model_config = SettingsConfigDict(env_prefix="CASE_API_", extra="ignore", validate_default=True)

    port: int = Field(8001, ge=0, le=65535, description="HTTP port.")
    public_base_url: str = Field(
        "http://127.0.0.1:8001", description="Base URL put into detail links that notices carry."
    )
    identity_number_key: str = Field(
        "dev-only-identity-number-key-change-me",
        min_length=16,
        description="Secret for the keyed hash and encryption of national identity numbers.",
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()
