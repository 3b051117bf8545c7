from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
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
    service_token: SecretStr = Field(
        SecretStr(""),
        description=(
            "Bearer token (role `service`) for calls to case-api and agreement-api. "
            "Empty in dev/test: one is minted with the development key."
        ),
    )
    http_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of calls to the other services.")
    claim_timeout_seconds: float = Field(
        300.0, gt=0, description="A claimed notice not delivered within this time returns to scheduled."
    )

    def bearer_token(self) -> str:
        """The configured service token; in dev/test, when empty, one minted with the dev key."""
        token = self.service_token.get_secret_value()
        if token:
            return token
        if self.env == "production":
            raise ValueError("NOTIFY_WORKER_SERVICE_TOKEN must be set in production")
        from shared.auth import mint_token

        return mint_token(role="service", subject="notify-worker", ttl_seconds=24 * 3600)

    @field_validator("binding_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
