"""List settings read from the environment, the way compose and Kubernetes pass them."""

from __future__ import annotations

import pytest

from agreement_api.config import Settings as AgreementSettings
from case_api.config import Settings as CaseSettings
from notify_worker.config import Settings as NotifySettings


def test_list_settings_accept_comma_separated_and_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CASE_API_BINDING_KEYS", "organization.#, case.#")
    monkeypatch.setenv("CASE_API_JWT_ALGORITHMS", '["RS256", "ES256"]')
    monkeypatch.setenv("AGREEMENT_API_BINDING_KEYS", "case.#")
    monkeypatch.setenv("NOTIFY_WORKER_BINDING_KEYS", "case.#,agreement.#,endpoint.#")
    assert CaseSettings().binding_keys == ["organization.#", "case.#"]
    assert CaseSettings().jwt_algorithms == ["RS256", "ES256"]
    assert AgreementSettings().binding_keys == ["case.#"]
    assert NotifySettings().binding_keys == ["case.#", "agreement.#", "endpoint.#"]


def test_none_stays_refused_in_either_form(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    for value in ("RS256,none", '["none"]'):
        monkeypatch.setenv("CASE_API_JWT_ALGORITHMS", value)
        with pytest.raises(ValidationError):
            CaseSettings()


def test_a_refused_setting_echoes_none_of_the_values_given() -> None:
    """A refused start logs the error: the secrets given beside the refused setting stay out of it."""
    from pydantic import ValidationError

    secret = "not-for-the-logs-0123456789"
    with pytest.raises(ValidationError) as refused:
        CaseSettings(env="production", database_url="sqlite://", identity_hash_key=secret)
    assert secret[-8:] not in str(refused.value)


JWKS = "https://auth.example.org/jwks.json"
POSTGRES = "postgresql://db/tilbake"
FERNET = "cHJvZHVjdGlvbi1rZXktMzItYnl0ZXMtbG9uZy0hISE="
PRODUCTION_CASE = {
    "env": "production",
    "database_url": POSTGRES,
    "amqp_url": "amqp://broker/",
    "jwt_jwks_url": JWKS,
    "identity_hash_key": "production-hash-key-0123456789",
    "identity_encryption_keys": [FERNET],
}
PRODUCTION_AGREEMENT = {
    "env": "production",
    "database_url": POSTGRES,
    "amqp_url": "amqp://broker/",
    "jwt_jwks_url": JWKS,
    "webhook_key_encryption_keys": [FERNET],
}
PRODUCTION_NOTIFY = {
    "env": "production",
    "database_url": POSTGRES,
    "amqp_url": "amqp://broker/",
    "jwt_jwks_url": JWKS,
}


@pytest.mark.parametrize(
    ("settings", "values", "variable"),
    [
        (CaseSettings, {**PRODUCTION_CASE, "jwt_jwks_url": None}, "CASE_API_JWT_JWKS_URL"),
        (NotifySettings, {"env": "production", "database_url": POSTGRES}, "NOTIFY_WORKER_JWT_PUBLIC_KEY_PEM"),
        (CaseSettings, {**PRODUCTION_CASE, "database_url": "sqlite://"}, "CASE_API_DATABASE_URL"),
        (CaseSettings, {**PRODUCTION_CASE, "amqp_url": None}, "CASE_API_AMQP_URL"),
        (AgreementSettings, {**PRODUCTION_AGREEMENT, "amqp_url": ""}, "AGREEMENT_API_AMQP_URL"),
        (CaseSettings, {**PRODUCTION_CASE, "identity_hash_key": None}, "CASE_API_IDENTITY_HASH_KEY"),
        (
            CaseSettings,
            {**PRODUCTION_CASE, "identity_encryption_keys": None},
            "CASE_API_IDENTITY_ENCRYPTION_KEYS",
        ),
        (
            AgreementSettings,
            {**PRODUCTION_AGREEMENT, "webhook_key_encryption_keys": None},
            "AGREEMENT_API_WEBHOOK_KEY_ENCRYPTION_KEYS",
        ),
        (
            AgreementSettings,
            {**PRODUCTION_AGREEMENT, "allow_http_webhooks": True},
            "AGREEMENT_API_ALLOW_HTTP_WEBHOOKS",
        ),
        (
            AgreementSettings,
            {**PRODUCTION_AGREEMENT, "allow_private_webhook_urls": True},
            "AGREEMENT_API_ALLOW_PRIVATE_WEBHOOK_URLS",
        ),
        (
            NotifySettings,
            {**PRODUCTION_NOTIFY, "allow_http_webhooks": True},
            "NOTIFY_WORKER_ALLOW_HTTP_WEBHOOKS",
        ),
        (
            NotifySettings,
            {**PRODUCTION_NOTIFY, "allow_private_webhook_urls": True},
            "NOTIFY_WORKER_ALLOW_PRIVATE_WEBHOOK_URLS",
        ),
    ],
)
def test_production_names_the_variable_it_refuses(
    settings: type[CaseSettings | AgreementSettings | NotifySettings],
    values: dict[str, object],
    variable: str,
) -> None:
    """An operator reads which variable to fix; a value left out (None) falls back on its default."""
    from pydantic import ValidationError

    given = {key: value for key, value in values.items() if value is not None}
    with pytest.raises(ValidationError, match=variable):
        settings(**given)
