from __future__ import annotations

from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """notify-worker settings (environment prefix ``NOTIFY_WORKER_``)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_WORKER_", extra="ignore", validate_default=True)

    port: int = Field(8003, ge=0, le=65535, description="HTTP port of the ops surface.")
    queue: str = Field("notify-worker.events", description="The worker's durable RabbitMQ queue.")
    binding_keys: list[str] = Field(
        default_factory=lambda: ["case.#", "agreement.#", "organization.#", "endpoint.#"],
        description="Routing keys bound to the queue (comma-separated or JSON list).",
    )
    shutdown_grace_seconds: float = Field(
        30.0,
        gt=0,
        description="How long SIGTERM waits for in-flight messages before leaving them to redelivery.",
    )
    case_api_url: str = Field("http://127.0.0.1:8001", description="Base URL of case-api.")
    agreement_api_url: str = Field("http://127.0.0.1:8002", description="Base URL of agreement-api.")

    @field_validator("binding_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
