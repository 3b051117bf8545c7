from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.contracts import events as contracts
from shared.settings import CommaList, ServiceSettings, deploy

# 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h, 12 h, 24 h, 24 h: about three days in all.
DEFAULT_RETRY_SCHEDULE = (30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400, 86400)


class Settings(ServiceSettings):
    """notify-worker settings (environment prefix ``NOTIFY_WORKER_``)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFY_WORKER_", extra="ignore", validate_default=True)

    port: int = Field(
        8003, ge=0, le=65535, description="HTTP port: receipts from recipients and the ops surface."
    )
    queue: str = Field("notify-worker.events", description="The worker's durable RabbitMQ queue.")
    binding_keys: CommaList = Field(
        default_factory=lambda: [
            "case.#",
            "agreement.#",
            "organization.#",
            "endpoint.#",
            contracts.NotifyRecomputeRequested.TYPE,
        ],
        description="Routing keys bound to the queue (comma-separated or JSON list).",
    )
    shutdown_grace_seconds: float = Field(
        30.0,
        gt=0,
        description="How long SIGTERM waits for in-flight messages before leaving them to redelivery.",
    )
    case_api_url: str = Field(
        "http://127.0.0.1:8001", description="Base URL of case-api.", json_schema_extra=deploy("peer")
    )
    agreement_api_url: str = Field(
        "http://127.0.0.1:8002", description="Base URL of agreement-api.", json_schema_extra=deploy("peer")
    )
    service_token: SecretStr = Field(
        SecretStr(""),
        description=(
            "Bearer token (role `service`) for calls to case-api and agreement-api. "
            "Empty in dev/test: one is minted with the development key."
        ),
        json_schema_extra=deploy("secret"),
    )
    http_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of calls to the other services.")
    claim_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="A claimed notice whose deliveries are not recorded within this time returns to scheduled.",
    )
    case_api_public_url: str = Field(
        "http://127.0.0.1:8001",
        description="Public base URL of case-api, for `detail_url` in notices.",
        json_schema_extra=deploy("public"),
    )
    dispatch_enabled: bool = Field(True, description="Run the delivery loop (claim, deliver, mark).")
    dispatch_interval_seconds: float = Field(
        5.0, gt=0, description="Pause of the delivery loop when it found nothing to do."
    )
    dispatch_batch_size: int = Field(20, ge=1, le=500, description="Notices or deliveries taken per round.")
    delivery_concurrency: int = Field(
        16,
        ge=1,
        le=256,
        description=(
            "Deliveries attempted side by side (leased with FOR UPDATE SKIP LOCKED into free slots); an "
            "attempt frees its slot when it ends, and attempts that end together are recorded in one "
            "transaction."
        ),
    )
    delivery_endpoint_concurrency: int = Field(
        2,
        ge=1,
        le=256,
        description=(
            "Attempts one webhook endpoint may have in flight in this worker; its other due deliveries "
            "wait for a later lease, so a slow or failing receiver holds no more of the "
            "`NOTIFY_WORKER_DELIVERY_CONCURRENCY` slots than this and delays no other receiver."
        ),
    )
    endpoint_cache_seconds: float = Field(
        10.0,
        ge=0,
        description=(
            "How long the delivery loop keeps an organization's endpoint list and an endpoint's signing "
            "keys from agreement-api (0: ask for every attempt). A disabled endpoint may still get "
            "attempts for up to this long."
        ),
    )
    allow_private_webhook_urls: bool = Field(
        False,
        description=(
            "Deliver to webhook URLs on private or loopback addresses (dev/test only); checked before "
            "every attempt, whatever agreement-api allowed when the URL was stored."
        ),
    )
    allow_http_webhooks: bool = Field(
        False, description="Deliver to plain http:// webhook URLs (dev/test only; production needs https)."
    )
    delivery_connect_timeout_seconds: float = Field(
        5.0, gt=0, description="Connect timeout of a webhook delivery."
    )
    delivery_read_timeout_seconds: float = Field(
        10.0, gt=0, description="Read timeout of a webhook delivery (the receiver's time to answer)."
    )
    retry_schedule_seconds: str = Field(
        ",".join(str(pause) for pause in DEFAULT_RETRY_SCHEDULE),
        description=(
            "Pauses in seconds before each retry of a failed delivery, comma-separated (±20 % jitter); "
            "after the last the delivery is dead."
        ),
    )
    endpoint_failure_disable_seconds: float = Field(
        259200.0,
        ge=0,
        description=(
            "An endpoint whose deliveries have failed without a success for this long is disabled in "
            "agreement-api, with an alert (default 3 days; 0: never). A 410 disables it at once."
        ),
    )

    lease_margin_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "Added to the longest an attempt can take (timeouts) to make a delivery's lease; a worker that "
            "dies mid-attempt is retried, with the same webhook-id, once the lease has run out."
        ),
    )
    escalation_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="How often the delivery loop looks for notices past their receipt deadline, or dead.",
    )

    def endpoint_failure_period(self) -> timedelta | None:
        """:attr:`endpoint_failure_disable_seconds` as a period; None when disabling is off."""
        seconds = self.endpoint_failure_disable_seconds
        return timedelta(seconds=seconds) if seconds > 0 else None

    def bearer_token(self) -> str:
        """The configured service token; in dev/test, when empty, one minted with the dev key."""
        token = self.service_token.get_secret_value()
        if token:
            return token
        if self.env == "production":
            raise ValueError("NOTIFY_WORKER_SERVICE_TOKEN must be set in production")
        from shared.auth import mint_token

        # Signed with the public development key, so its lifetime protects nothing; a year keeps a
        # long-running dev or embedded instance from losing its peers after a day.
        return mint_token(role="service", subject="notify-worker", ttl_seconds=365 * 24 * 3600)

    def retry_schedule(self) -> list[float]:
        """:attr:`retry_schedule_seconds` as numbers."""
        return [float(part) for part in self.retry_schedule_seconds.split(",") if part.strip()]

    @field_validator("retry_schedule_seconds")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        try:
            pauses = [float(part) for part in parts]
        except ValueError:
            raise ValueError("a comma-separated list of seconds, such as '30,120,600'") from None
        if not pauses or any(pause <= 0 for pause in pauses):
            raise ValueError("at least one pause, every one above zero")
        return ",".join(parts)

    @model_validator(mode="after")
    def _no_dev_webhook_urls_in_production(self) -> Self:
        if self.env == "production":
            for flag in ("allow_http_webhooks", "allow_private_webhook_urls"):
                if getattr(self, flag):
                    raise ValueError(
                        f"{self.variable(flag)}: plain-http and private webhook URLs are for dev/test only"
                    )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
