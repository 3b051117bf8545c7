"""Ports to the other services, over HTTP with a `service` bearer token.

Services never import each other: these clients speak the published APIs of agreement-api
(``GET /api/v1/resolution``, an organization's webhook endpoints and their signing keys) and case-api
(``GET /api/v1/cases/{id}/disclosure``, ``GET /api/v1/notice-facts``). Each takes an
injectable :class:`httpx.AsyncClient`, so tests can hand in ASGI transports.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterable
from datetime import datetime, timedelta
from typing import Generic, Literal, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

from notify_worker.config import Settings

FACTS_CHUNK = 200  # cases per GET /api/v1/notice-facts: case-api's limit


class UpstreamError(Exception):
    """Another service answered with an unexpected status; the message is retried."""


class Milestone(BaseModel):
    model_config = ConfigDict(extra="ignore")

    days_before_release: int = Field(ge=0)
    business_days: bool = False


class Profile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    domains: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=list)


class Rule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    agreement_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    recipient_organization_id: uuid.UUID
    recipient_organization_type: str | None = None
    milestones: list[Milestone] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    receipt_deadline_days: int = 5
    data_sharing_profile: Profile = Field(default_factory=Profile)


class AgreementRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    version: int


class WebhookEndpoint(BaseModel):
    """An endpoint as ``GET /api/v1/organizations/{id}/webhooks`` lists it."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    event_types: list[str] = Field(default_factory=list)
    state: str

    def wants(self, event_type: str) -> bool:
        """Active, and subscribed to ``event_type`` (an empty list means every type)."""
        return self.state == "active" and (not self.event_types or event_type in self.event_types)


class SigningKey(BaseModel):
    """A key valid at the moment asked for, with its secret (never logged)."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    kind: Literal["hmac", "ed25519"]
    secret: str


class Resolution(BaseModel):
    """agreement-api's answer: who is told what for a case."""

    model_config = ConfigDict(extra="ignore")

    source: Literal["agreement", "default", "none"]
    explanation: str | None = None
    agreements: list[AgreementRef] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    def agreement_version(self, agreement_id: uuid.UUID | None) -> int | None:
        for agreement in self.agreements:
            if agreement.id == agreement_id:
                return agreement.version
        return None


class Contact(BaseModel):
    """A member of staff: the case's coordinator (never the inmate)."""

    model_config = ConfigDict(extra="ignore")

    name: str
    phone: str | None = None
    email: str | None = None
    organization_id: uuid.UUID | None = None


class NoticeFacts(BaseModel):
    """case-api's ``GET /api/v1/cases/{id}/notice-facts``: what a notice's payload says beyond ids."""

    model_config = ConfigDict(extra="ignore")

    case_id: uuid.UUID
    effective_release_date: str | None = None
    release_date_certainty: str | None = None
    coordinator: Contact | None = None


class AgreementPort(Protocol):
    async def resolve(
        self,
        unit_id: uuid.UUID,
        kommunenummer: str | None,
        nav_office_id: uuid.UUID | None,
        domains: Iterable[str] = (),
    ) -> Resolution: ...


class EndpointPort(Protocol):
    """What delivery asks agreement-api: where to send and what to sign with."""

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]: ...

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]: ...

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool: ...


class CasePort(Protocol):
    async def may_receive(self, case_id: uuid.UUID, organization_id: uuid.UUID, domain: str) -> bool: ...


class FactsPort(Protocol):
    async def notice_facts_many(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, NoticeFacts]: ...


class _Client:
    def __init__(self, base_url: str, token: str, *, http: httpx.AsyncClient | None, timeout: float) -> None:
        self._owned = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()


class AgreementClient(_Client):
    """agreement-api: the resolution, webhook endpoints and signing keys."""

    def __init__(
        self, base_url: str, token: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        super().__init__(base_url, token, http=http, timeout=timeout)

    async def resolve(
        self,
        unit_id: uuid.UUID,
        kommunenummer: str | None,
        nav_office_id: uuid.UUID | None,
        domains: Iterable[str] = (),
    ) -> Resolution:
        params: list[tuple[str, str | int | float | bool | None]] = [("unit_id", str(unit_id))]
        if kommunenummer:
            params.append(("kommunenummer", kommunenummer))
        if nav_office_id:
            params.append(("nav_office_id", str(nav_office_id)))
        params.extend(("domains", domain) for domain in domains)
        response = await self._http.get("/api/v1/resolution", params=params, headers=self._headers)
        if response.status_code == 422:
            # An organization the directory does not know (yet): nobody can be resolved.
            return Resolution(source="none", explanation="agreement-api could not resolve the case")
        if response.status_code != 200:
            raise UpstreamError(f"agreement-api resolution answered {response.status_code}")
        return Resolution.model_validate(response.json())

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        """Every webhook endpoint of the organization (``GET /api/v1/organizations/{id}/webhooks``,
        all pages); the caller filters with :meth:`WebhookEndpoint.wants`."""
        endpoints: list[WebhookEndpoint] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            response = await self._http.get(
                f"/api/v1/organizations/{organization_id}/webhooks", params=params, headers=self._headers
            )
            if response.status_code == 404:
                return []  # an organization agreement-api does not know has no endpoints
            if response.status_code != 200:
                raise UpstreamError(f"agreement-api webhooks answered {response.status_code}")
            page = response.json()
            endpoints.extend(WebhookEndpoint.model_validate(item) for item in page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return endpoints

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        """The endpoint's keys valid at ``at`` (``GET /api/v1/webhooks/{id}/signing-keys``)."""
        response = await self._http.get(
            f"/api/v1/webhooks/{endpoint_id}/signing-keys",
            params={"at": at.isoformat()},
            headers=self._headers,
        )
        if response.status_code != 200:
            raise UpstreamError(f"agreement-api signing keys answered {response.status_code}")
        return [SigningKey.model_validate(item) for item in response.json().get("keys", [])]

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        """``POST /api/v1/webhooks/{id}/disable``; False when agreement-api does not know it."""
        response = await self._http.post(
            f"/api/v1/webhooks/{endpoint_id}/disable", json={"reason": reason}, headers=self._headers
        )
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise UpstreamError(f"agreement-api disable answered {response.status_code}")
        return True


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _TtlCache(Generic[K, V]):
    """Answers kept for ``ttl`` seconds; concurrent misses of one key share a single request.

    Errors are not kept: every waiter of the failed request gets the error, and the next ask tries
    again."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._kept: dict[K, tuple[float, V]] = {}
        self._asking: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, ask: Callable[[], Awaitable[V]]) -> V:
        kept = self._kept.get(key)
        if kept is not None and self._clock() < kept[0]:
            return kept[1]
        asking = self._asking.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._asking[key] = future
        try:
            value = await ask()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            self._kept[key] = (self._clock() + self._ttl, value)
            future.set_result(value)
            return value
        finally:
            del self._asking[key]

    def forget(self, key: K | None = None) -> None:
        """Drop one key's answer, or every answer."""
        if key is None:
            self._kept.clear()
        else:
            self._kept.pop(key, None)


class CachedEndpoints:
    """An :class:`EndpointPort` that keeps an organization's endpoint list and an endpoint's signing
    keys for ``ttl`` seconds (``NOTIFY_WORKER_ENDPOINT_CACHE_SECONDS``).

    Without it every attempt asks agreement-api for the keys, the largest single cost of a delivery.
    Kept keys stay verifiable: a rotation keeps the old key valid for an overlap period far longer
    than the cache. The trade-off: an endpoint disabled or removed in agreement-api may still be
    planned and attempted for up to ``ttl``; recording such an attempt finds the delivery ended
    or the receiver refusing, as it does for an attempt in flight when the endpoint is disabled.
    Disabling through this port forgets the kept answers at once."""

    def __init__(
        self, port: EndpointPort, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._port = port
        self.max_age = timedelta(seconds=ttl)  # how old a kept answer may be
        self._endpoints: _TtlCache[uuid.UUID, list[WebhookEndpoint]] = _TtlCache(ttl, clock)
        self._keys: _TtlCache[uuid.UUID, list[SigningKey]] = _TtlCache(ttl, clock)

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        return await self._endpoints.get(organization_id, lambda: self._port.endpoints_for(organization_id))

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        # Keys valid when first asked; still valid within the TTL thanks to the rotation overlap.
        return await self._keys.get(endpoint_id, lambda: self._port.signing_keys(endpoint_id, at))

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        try:
            return await self._port.disable_endpoint(endpoint_id, reason)
        finally:
            self._keys.forget(endpoint_id)
            self._endpoints.forget()  # the organization is not known here; lists are cheap to ask again


def cached(port: EndpointPort, ttl: float) -> EndpointPort:
    """``port`` behind a :class:`CachedEndpoints` of ``ttl`` seconds; ``port`` itself when 0."""
    return CachedEndpoints(port, ttl=ttl) if ttl > 0 else port


class CaseClient(_Client):
    """case-api: ``GET /api/v1/cases/{id}/disclosure``, ``GET /api/v1/notice-facts`` and
    ``GET /api/v1/cases/{id}/notice-facts``."""

    def __init__(
        self, base_url: str, token: str, *, http: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        super().__init__(base_url, token, http=http, timeout=timeout)

    async def may_receive(self, case_id: uuid.UUID, organization_id: uuid.UUID, domain: str) -> bool:
        response = await self._http.get(
            f"/api/v1/cases/{case_id}/disclosure",
            params={"organization_id": str(organization_id), "domain": domain},
            headers=self._headers,
        )
        if response.status_code in (404, 422):
            return False  # unknown case, organization or domain: nothing may be disclosed
        if response.status_code != 200:
            raise UpstreamError(f"case-api disclosure answered {response.status_code}")
        return bool(response.json().get("allowed"))

    async def notice_facts(self, case_id: uuid.UUID) -> NoticeFacts | None:
        """The release date's certainty and the coordinator's contact; None for an unknown case."""
        response = await self._http.get(f"/api/v1/cases/{case_id}/notice-facts", headers=self._headers)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UpstreamError(f"case-api notice-facts answered {response.status_code}")
        return NoticeFacts.model_validate(response.json())

    async def notice_facts_many(self, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, NoticeFacts]:
        """The facts of many cases, :data:`FACTS_CHUNK` per request (``GET /api/v1/notice-facts``);
        a case case-api does not know is not in the answer. One request instead of one per case
        is most of case-api's cost of a notice."""
        ids = list(dict.fromkeys(case_ids))
        found: dict[uuid.UUID, NoticeFacts] = {}
        for start in range(0, len(ids), FACTS_CHUNK):
            response = await self._http.get(
                "/api/v1/notice-facts",
                params=[("case_id", str(case_id)) for case_id in ids[start : start + FACTS_CHUNK]],
                headers=self._headers,
            )
            if response.status_code != 200:
                raise UpstreamError(f"case-api notice-facts answered {response.status_code}")
            for item in response.json().get("items", []):
                facts = NoticeFacts.model_validate(item)
                found[facts.case_id] = facts
        return found


def clients_from_settings(
    settings: Settings,
    *,
    agreement_http: httpx.AsyncClient | None = None,
    case_http: httpx.AsyncClient | None = None,
) -> tuple[AgreementClient, CaseClient]:
    token = settings.bearer_token()
    timeout = settings.http_timeout_seconds
    return (
        AgreementClient(settings.agreement_api_url, token, http=agreement_http, timeout=timeout),
        CaseClient(settings.case_api_url, token, http=case_http, timeout=timeout),
    )
