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
