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
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import httpx
from cachetools import TTLCache

from notify_worker.config import Settings
from shared.contracts.answers import (
    Disclosure,
    NoticeFacts,
    NoticeFactsList,
    Resolution,
    SigningKey,
    SigningKeys,
    WebhookEndpoint,
    WebhookEndpointPage,
)
from shared.retry import TransientError

FACTS_CHUNK = 200  # cases per GET /api/v1/notice-facts: case-api's limit


class UpstreamError(TransientError):
    """Another service answered with an unexpected status; the message is retried with backoff."""


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
            page = WebhookEndpointPage.model_validate(response.json())
            endpoints.extend(page.items)
            cursor = page.next_cursor
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
        return SigningKeys.model_validate(response.json()).keys

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


CACHE_SIZE = 10_000  # organizations' endpoint lists, and endpoints' key sets, kept at most
V = TypeVar("V")


class CachedEndpoints:
    """An :class:`EndpointPort` that keeps an organization's endpoint list and an endpoint's signing
    keys for ``ttl`` seconds (``NOTIFY_WORKER_ENDPOINT_CACHE_SECONDS``) in cachetools TTLCaches;
    concurrent misses of one key share a single request, and errors are not kept.

    Without it every attempt asks agreement-api for the keys, the largest single cost of a delivery.
    Kept keys stay verifiable: a rotation keeps the old key valid for an overlap period far longer
    than the cache. The consumer calls :meth:`forget` for every ``endpoint.*`` event, so a new or
    changed endpoint is seen at once; an answer asked before a forget is neither kept nor shared
    with a caller that asks after it. Disabling through this port forgets too."""

    def __init__(
        self, port: EndpointPort, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._port = port
        self.ttl = ttl
        self.max_age = timedelta(seconds=ttl)  # how old a kept answer may be
        size = CACHE_SIZE if ttl > 0 else 1
        self._endpoints: TTLCache[uuid.UUID, list[WebhookEndpoint]] = TTLCache(size, max(ttl, 1e-9), clock)
        self._keys: TTLCache[uuid.UUID, list[SigningKey]] = TTLCache(size, max(ttl, 1e-9), clock)
        self._asking: dict[tuple[str, uuid.UUID], asyncio.Future[Any]] = {}
        self._generation = 0

    async def _kept(
        self, cache: TTLCache[uuid.UUID, V], kind: str, key: uuid.UUID, ask: Callable[[], Awaitable[V]]
    ) -> V:
        if self.ttl <= 0:
            return await ask()
        kept = cache.get(key)
        if kept is not None:
            return kept
        flight = (kind, key)
        asking = self._asking.get(flight)
        if asking is not None:
            value: V = await asyncio.shield(asking)
            return value
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._asking[flight] = future
        generation = self._generation
        try:
            value = await ask()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        else:
            if generation == self._generation:
                cache[key] = value
            future.set_result(value)
            return value
        finally:
            if self._asking.get(flight) is future:
                del self._asking[flight]

    async def endpoints_for(self, organization_id: uuid.UUID) -> list[WebhookEndpoint]:
        return await self._kept(
            self._endpoints, "endpoints", organization_id, lambda: self._port.endpoints_for(organization_id)
        )

    async def signing_keys(self, endpoint_id: uuid.UUID, at: datetime) -> list[SigningKey]:
        # Keys valid when first asked; still valid within the TTL thanks to the rotation overlap.
        return await self._kept(
            self._keys, "keys", endpoint_id, lambda: self._port.signing_keys(endpoint_id, at)
        )

    async def disable_endpoint(self, endpoint_id: uuid.UUID, reason: str) -> bool:
        try:
            return await self._port.disable_endpoint(endpoint_id, reason)
        finally:
            self.forget(endpoint_id=endpoint_id)

    def forget(self, organization_id: uuid.UUID | None = None, endpoint_id: uuid.UUID | None = None) -> None:
        """Drop the organization's endpoint list and the endpoint's keys; every list when no
        organization is named. Requests already under way are not shared with later askers."""
        self._generation += 1
        if organization_id is None:
            self._endpoints.clear()
        else:
            self._endpoints.pop(organization_id, None)
        if endpoint_id is not None:
            self._keys.pop(endpoint_id, None)
        for kind, key in list(self._asking):
            if (kind == "endpoints" and organization_id in (None, key)) or (kind, key) == (
                "keys",
                endpoint_id,
            ):
                del self._asking[kind, key]


def cached(port: EndpointPort, ttl: float) -> CachedEndpoints:
    """``port`` behind a :class:`CachedEndpoints` of ``ttl`` seconds (0: nothing is kept)."""
    return CachedEndpoints(port, ttl=ttl)


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
        return Disclosure.model_validate(response.json()).allowed

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
            for facts in NoticeFactsList.model_validate(response.json()).items:
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
