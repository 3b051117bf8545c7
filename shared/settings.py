"""Settings shared by every service.

Each service subclasses :class:`ServiceSettings` with its own environment prefix
(``CASE_API_``, ``AGREEMENT_API_``, ``NOTIFY_WORKER_``) and builds it with a function, never at
import time, so tests and the embedded runner can construct settings explicitly.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic.json_schema import JsonDict
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.retry import RETRY_DELAYS_SECONDS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEV_KEY_DIR = REPO_ROOT / "deploy" / "dev-keys"
DEV_JWT_PUBLIC_KEY_FILE = DEV_KEY_DIR / "jwt-dev-public.pem"
DEV_JWT_PRIVATE_KEY_FILE = DEV_KEY_DIR / "jwt-dev-private.pem"
DEV_JWT_ISSUER = "https://auth.tilbake.local/dev"

Environment = Literal["dev", "test", "production"]


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# A list setting given as "a,b,c" or a JSON list. NoDecode stops pydantic-settings from
# insisting on JSON for list fields read from the environment.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
SecondsList = Annotated[
    list[Annotated[float, Field(gt=0, le=86400)]], NoDecode, BeforeValidator(_split_commas)
]


DeployRole = Literal["peer", "public", "backing", "secret"]


def deploy(role: DeployRole, *, one_of: str | None = None) -> JsonDict:
    """``json_schema_extra`` of a setting a multi-host deployment must set (deploy/README.md,
    "Settings a deployment must set"); of settings sharing ``one_of``, one is enough."""
    return {"deploy": role} if one_of is None else {"deploy": role, "one_of": one_of}


def normalize_database_url(url: str) -> str:
    """Map plain URLs onto the async drivers the services use."""
    for prefix in (
        "postgres://",
        "postgresql://",
        "postgresql+psycopg://",
        "postgresql+psycopg2://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+aiosqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


class ServiceSettings(BaseSettings):
    """Keys every service understands. Subclasses set ``env_prefix``."""

    # hide_input_in_errors: a refused setting's error must not echo the values given (secrets).
    model_config = SettingsConfigDict(extra="ignore", validate_default=True, hide_input_in_errors=True)

    env: Environment = Field("dev", description="Deployment environment: dev, test or production.")
    database_url: str = Field(
        "sqlite+aiosqlite:///./var/embedded.sqlite3",
        description="SQLAlchemy URL; postgresql:// is mapped to asyncpg, sqlite:// to aiosqlite.",
        json_schema_extra=deploy("backing"),
    )
    database_pool_size: int = Field(
        10,
        ge=1,
        description="Connections per process (Postgres): all kept open; a request beyond them waits for one.",
    )
    amqp_url: str | None = Field(
        None,
        description="RabbitMQ URL (amqp://user:pass@host:5672/vhost). Empty: in-process bus.",
        json_schema_extra=deploy("backing"),
    )
    event_exchange: str = Field("tilbake.events", description="Durable topic exchange for events.")
    queue_type: Literal["quorum", "classic"] = Field(
        "quorum", description="RabbitMQ queue type for consumer queues."
    )
    event_retry_delays: SecondsList = Field(
        default_factory=lambda: list(RETRY_DELAYS_SECONDS),
        min_length=1,
        description="Seconds a consumed event waits before each retry after its handler failed "
        "(comma-separated); a transient failure gets them all, any other three attempts in all.",
    )
    log_level: str = Field("INFO", description="Root log level.")
    log_json: bool | None = Field(
        None, description="JSON log lines; defaults to true in production, false elsewhere."
    )
    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port.")
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body in bytes; a larger one gets 413 before it is read whole "
        "(keep the ingress's limit the same).",
    )
    jwt_issuer: str = Field(DEV_JWT_ISSUER, description="Expected `iss` claim.")
    jwt_audience: str = Field("tilbake", description="Expected `aud` claim.")
    jwt_algorithms: CommaList = Field(
        default_factory=lambda: ["RS256"],
        description="Allowed JWT algorithms (comma-separated or JSON list); `none` is never allowed.",
    )
    jwt_public_key_pem: str | None = Field(
        None,
        description="PEM public key (or HMAC secret for HS*) verifying tokens.",
        json_schema_extra=deploy("secret", one_of="jwt-key"),
    )
    jwt_jwks_url: str | None = Field(
        None,
        description="JWKS URL; takes precedence over the PEM key.",
        json_schema_extra=deploy("secret", one_of="jwt-key"),
    )
    jwt_leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf.")
    outbox_poll_seconds: float = Field(
        0.5, gt=0, description="How often the outbox relay looks for committed events."
    )
    outbox_batch_size: int = Field(100, ge=1, description="Events the relay publishes per batch.")
    outbox_relay_enabled: bool = Field(
        True, description="Run the outbox relay in this process (several replicas may; rows are claimed)."
    )

    @field_validator("database_url")
    @classmethod
    def _normalize_database_url(cls, value: str) -> str:
        return normalize_database_url(value)

    @field_validator("jwt_algorithms")
    @classmethod
    def _no_none_algorithm(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one JWT algorithm must be allowed")
        if any(alg.lower() == "none" for alg in value):
            raise ValueError("the `none` algorithm is never allowed")
        return value

    @field_validator("amqp_url", "jwt_public_key_pem", "jwt_jwks_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @classmethod
    def variable(cls, name: str) -> str:
        """The environment variable of field ``name``, as an operator sets it (for error messages)."""
        return f"{cls.model_config.get('env_prefix', '')}{name}".upper()

    @model_validator(mode="after")
    def _production_guards(self) -> ServiceSettings:
        if self.jwt_public_key_pem is None and self.jwt_jwks_url is None:
            if self.env == "production":
                raise ValueError(
                    f"production needs {self.variable('jwt_jwks_url')} "
                    f"or {self.variable('jwt_public_key_pem')}"
                )
            self.jwt_public_key_pem = DEV_JWT_PUBLIC_KEY_FILE.read_text()
        if self.env == "production":
            if self.jwt_public_key_pem and self.jwt_public_key_pem.strip() == (
                DEV_JWT_PUBLIC_KEY_FILE.read_text().strip()
            ):
                raise ValueError(
                    f"{self.variable('jwt_public_key_pem')}: the development JWT key must not be used "
                    "in production"
                )
            if self.database_url.startswith("sqlite"):
                raise ValueError(
                    f"{self.variable('database_url')}: production runs on PostgreSQL, not SQLite"
                )
            if self.amqp_url is None:
                # The in-process bus would take every event and reach no other service.
                raise ValueError(f"production needs {self.variable('amqp_url')} (RabbitMQ)")
        return self

    @property
    def json_logs(self) -> bool:
        return self.log_json if self.log_json is not None else self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def settings_fields(cls: type[ServiceSettings]) -> list[tuple[str, str, str]]:
    """(environment variable, default, description) for each field of a settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    rows = []
    for name, field in cls.model_fields.items():
        if field.default_factory is not None:
            default: Any = field.default_factory()  # type: ignore[call-arg]
        else:
            default = field.default
        if isinstance(default, list):
            default = ",".join(f"{item:g}" if isinstance(item, float) else str(item) for item in default)
        shown = "" if default is None else str(default)
        rows.append((f"{prefix}{name}".upper(), shown, field.description or ""))
    return rows
