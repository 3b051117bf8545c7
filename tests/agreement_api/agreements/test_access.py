"""Every role against every route that changes agreements or their notice rules.

One scenario: an agreement between Halden fengsel (a prison in Region øst) and Oslo kommune, with a
notice rule. A coordinator may change it when its token's organization is a party or the region of
a party; a coordinator for another region, another region's prison or no organization gets 403, as
does every role that never manages agreements. Agreements are readable by everyone, so 403 (not
404) is the answer outside scope. Each allowed caller works on a fresh agreement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.agreement_api.agreements.helpers import RULE, agreement_body, organization
from tests.conftest import auth


@dataclass
class Orgs:
    east: str
    halden_prison: str  # in Region øst
    north: str
    tromso_prison: str  # in Region nord
    oslo: str  # a municipality, under no region


async def _orgs(client: httpx.AsyncClient) -> Orgs:
    east = await organization(client, type="region", name="Region øst")
    north = await organization(client, type="region", name="Region nord")
    return Orgs(
        east=east,
        halden_prison=await organization(client, type="prison", name="Halden fengsel", parent_id=east),
        north=north,
        tromso_prison=await organization(client, type="prison", name="Tromsø fengsel", parent_id=north),
        oslo=await organization(client, type="municipality", name="Oslo kommune", kommunenummer="0301"),
    )


# caller name -> (role, Orgs attribute of its organization or None)
CALLERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "coordinator_region": ("coordinator", "east"),
    "coordinator_party_unit": ("coordinator", "halden_prison"),
    "coordinator_party_municipality": ("coordinator", "oslo"),
    "coordinator_other_region": ("coordinator", "north"),
    "coordinator_other_unit": ("coordinator", "tromso_prison"),
    "coordinator_no_organization": ("coordinator", None),
    "prison_staff": ("prison_staff", "halden_prison"),
    "municipality": ("municipality", "oslo"),
    "nav": ("nav", None),
    "health": ("health", None),
    "integration_admin": ("integration_admin", "oslo"),
    "service_market": ("service_market", "halden_prison"),
    "auditor": ("auditor", None),
    "service": ("service", None),
}
ALLOWED = {"admin", "coordinator_region", "coordinator_party_unit", "coordinator_party_municipality"}


@dataclass
class Scenario:
    client: httpx.AsyncClient
    orgs: Orgs
    agreement_id: str
    rule_id: str

    def headers(self, caller: str) -> dict[str, str]:
        role, org = CALLERS[caller]
        return auth(role, org=getattr(self.orgs, org) if org else None)

    @property
    def url(self) -> str:
        return f"/api/v1/agreements/{self.agreement_id}"

    async def etag(self, path: str) -> str:
        response = await self.client.get(path, headers=auth("admin"))
        assert response.status_code == 200, response.text
        return str(response.headers["etag"])


async def build_scenario(client: httpx.AsyncClient, orgs: Orgs) -> Scenario:
    created = await client.post(
        "/api/v1/agreements", json=agreement_body(orgs.halden_prison, orgs.oslo), headers=auth("admin")
    )
    assert created.status_code == 201, created.text
    agreement_id = created.json()["id"]
    rule = await client.post(f"/api/v1/agreements/{agreement_id}/rules", json=RULE, headers=auth("admin"))
    assert rule.status_code == 201, rule.text
    return Scenario(client=client, orgs=orgs, agreement_id=agreement_id, rule_id=rule.json()["id"])


Call = Callable[[Scenario, dict[str, str]], Awaitable[httpx.Response]]


def _send(
    method: str,
    path: Callable[[Scenario], str],
    body: Callable[[Scenario], Any] | None = None,
    etag_of: Callable[[Scenario], str] | None = None,
) -> Call:
    async def call(s: Scenario, headers: dict[str, str]) -> httpx.Response:
        extra = {"If-Match": await s.etag(etag_of(s))} if etag_of else {}
        return await s.client.request(
            method, path(s), json=body(s) if body else None, headers={**headers, **extra}
        )

    return call


def _rule(s: Scenario) -> str:
    return f"{s.url}/rules/{s.rule_id}"


ENDPOINTS: dict[str, Call] = {
    "POST /agreements": _send(
        "POST", lambda s: "/api/v1/agreements", lambda s: agreement_body(s.orgs.halden_prison, s.orgs.oslo)
    ),
    "PATCH /agreements/{agreement_id}": _send(
        "PATCH", lambda s: s.url, lambda s: {"title": "Samarbeidsavtale Halden-Oslo"}, lambda s: s.url
    ),
    "POST /agreements/{agreement_id}/status": _send(
        "POST", lambda s: f"{s.url}/status", lambda s: {"status": "negotiating"}, lambda s: s.url
    ),
    "POST /agreements/{agreement_id}/rules": _send(
        "POST", lambda s: f"{s.url}/rules", lambda s: {**RULE, "recipient_organization_type": "nav_office"}
    ),
    "PATCH /agreements/{agreement_id}/rules/{rule_id}": _send(
        "PATCH", _rule, lambda s: {"receipt_deadline_days": 7}, _rule
    ),
    "DELETE /agreements/{agreement_id}/rules/{rule_id}": _send("DELETE", _rule),
}


def test_the_matrix_covers_every_route_that_changes_agreements() -> None:
    from agreement_api.config import Settings
    from agreement_api.main import create_app

    spec = create_app(Settings(env="test")).openapi()
    changing = {
        f"{method.upper()} {path.removeprefix('/api/v1')}"
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/api/v1/agreements") and method != "get"
    }
    assert changing == set(ENDPOINTS)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_only_admins_and_coordinators_in_scope_change_agreements(
    agreement_client: httpx.AsyncClient, endpoint: str
) -> None:
    """Denied callers first, on one agreement that must stay as it was; then each allowed caller on
    a fresh agreement."""
    orgs = await _orgs(agreement_client)
    scenario = await build_scenario(agreement_client, orgs)
    before = (await agreement_client.get(scenario.url, headers=auth("admin"))).json()
    listed_before = (await agreement_client.get("/api/v1/agreements", headers=auth("admin"))).json()
    for caller in sorted(set(CALLERS) - ALLOWED):
        response = await ENDPOINTS[endpoint](scenario, scenario.headers(caller))
        assert response.status_code == 403, f"{caller} {endpoint}: {response.status_code} {response.text}"
        assert response.headers["content-type"] == "application/problem+json"
    assert (await agreement_client.get(scenario.url, headers=auth("admin"))).json() == before
    assert (await agreement_client.get("/api/v1/agreements", headers=auth("admin"))).json() == listed_before
    for caller in sorted(ALLOWED):
        target = await build_scenario(agreement_client, orgs)
        response = await ENDPOINTS[endpoint](target, target.headers(caller))
        assert 200 <= response.status_code < 300, (
            f"{caller} {endpoint}: {response.status_code} {response.text}"
        )


async def test_a_change_of_parties_must_stay_in_the_coordinators_scope(
    agreement_client: httpx.AsyncClient,
) -> None:
    orgs = await _orgs(agreement_client)
    scenario = await build_scenario(agreement_client, orgs)
    east, north = scenario.headers("coordinator_region"), scenario.headers("coordinator_other_region")

    async def parties(headers: dict[str, str], *party_ids: str) -> httpx.Response:
        return await agreement_client.patch(
            scenario.url,
            json={"parties": [{"organization_id": party} for party in party_ids]},
            headers={**headers, "If-Match": await scenario.etag(scenario.url)},
        )

    assert (await parties(east, orgs.tromso_prison, orgs.oslo)).status_code == 403, "out of its scope"
    assert (await parties(north, orgs.tromso_prison, orgs.oslo)).status_code == 403, "not its agreement"
    moved = await parties(east, orgs.east, orgs.oslo)
    assert moved.status_code == 200, moved.text
    assert {party["organization_id"] for party in moved.json()["parties"]} == {orgs.east, orgs.oslo}
