"""case-api's port to agreement-api: which notice rules apply to a case, over HTTP.

Services never import each other, so this speaks agreement-api's published
``GET /api/v1/resolution`` with a `service` bearer token and reads only what the detail view
needs, with the contract model in :mod:`shared.contracts.answers`. It takes an injectable :class:`httpx.AsyncClient`, so tests hand in an in-process
agreement-api (``httpx.ASGITransport``).
"""

from __future__ import annotations

import uuid

import httpx
import structlog
from pydantic import ValidationError

from shared.contracts.answers import Resolution
from shared.retry import TransientError

log = structlog.get_logger("case_api.notices.agreements")


class AgreementApiUnavailable(TransientError):
    """agreement-api could not be asked or gave no usable answer; the caller may retry later."""


class AgreementApi:
    """agreement-api's resolution, asked afresh on every call: the profile must be the current one."""

    def __init__(
        self, base_url: str, token: str, *, http: httpx.AsyncClient | None = None, timeout: float = 5.0
    ) -> None:
        self._owned = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def resolve(
        self, unit_id: uuid.UUID, kommunenummer: str | None, nav_office_id: uuid.UUID | None
    ) -> Resolution:
        """The rules for a case in ``unit_id`` (all domains). A unit or office agreement-api does not
        know (422) resolves nobody; anything else but 200 raises :class:`AgreementApiUnavailable`."""
        params: dict[str, str] = {"unit_id": str(unit_id)}
        if kommunenummer:
            params["kommunenummer"] = kommunenummer
        if nav_office_id:
            params["nav_office_id"] = str(nav_office_id)
        try:
            response = await self._http.get("/api/v1/resolution", params=params, headers=self._headers)
        except httpx.HTTPError as exc:
            log.warning("agreement_api.unreachable", error_class=type(exc).__name__)
            raise AgreementApiUnavailable("agreement-api could not be reached") from exc
        if response.status_code == 422:
            return Resolution(source="none")
        if response.status_code != 200:
            log.warning("agreement_api.unexpected_status", status_code=response.status_code)
            raise AgreementApiUnavailable(f"agreement-api resolution answered {response.status_code}")
        try:
            return Resolution.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            log.warning("agreement_api.unreadable_answer", error_class=type(exc).__name__)
            raise AgreementApiUnavailable("agreement-api gave an answer case-api cannot read") from exc
