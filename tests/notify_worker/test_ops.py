"""The operators' view of the schedule, and the worker's ports and token."""

from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import SecretStr

from notify_worker.clients import AgreementClient, CaseClient, UpstreamError
from notify_worker.main import create_app
from shared.auth import Role, TokenVerifier
from tests.conftest import auth, running, test_settings
from tests.notify_worker.conftest import World, days, today


async def test_operators_read_a_case_schedule_and_nobody_else_does(database_url: str, world: World) -> None:
    case_id = await world.open_case()
    await world.set_municipality(case_id, "0301", "confirmed")
    await world.set_release(case_id, today() + days(45))
    await world.feed()
    app = create_app(test_settings("notify_worker.config", database_url))
    async with running(app, sessionmaker=world.sessionmaker) as client:
        url = f"/api/v1/cases/{case_id}/notices"
        admin = await client.get(url, headers=auth("admin"))
        auditor = await client.get(url, headers=auth("auditor"))
        coordinator = await client.get(url, headers=auth("coordinator", org=str(uuid.uuid4())))
        anonymous = await client.get(url)
    assert admin.status_code == 200, admin.text
    items = admin.json()["items"]
    assert len(items) == 8
    assert [item["due_at"] for item in items] == sorted(item["due_at"] for item in items)
    assert {item["hold_reason"] for item in items} == {"no_consent"}
    assert auditor.json() == admin.json()
    assert coordinator.status_code == 403
    assert anonymous.status_code == 401


async def test_the_service_token_is_minted_in_dev_and_required_in_production(database_url: str) -> None:
    settings = test_settings("notify_worker.config", database_url)
    principal = await TokenVerifier(settings).principal(settings.bearer_token())
    assert principal.role is Role.SERVICE
    assert principal.subject == "notify-worker"
    given = test_settings("notify_worker.config", database_url, service_token=SecretStr("abc"))
    assert given.bearer_token() == "abc"
    assert "abc" not in repr(given)
    production = given.model_copy(update={"env": "production", "service_token": SecretStr("")})
    with pytest.raises(ValueError, match="SERVICE_TOKEN"):
        production.bearer_token()


async def test_the_ports_send_the_token_and_map_upstream_answers() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/api/v1/resolution":
            if request.url.params.get("kommunenummer") == "9999":
                return httpx.Response(422, json={"title": "Unknown organization"})
            if request.url.params.get("kommunenummer") == "5000":
                return httpx.Response(503)
            return httpx.Response(200, json={"source": "default", "rules": [], "agreements": []})
        organization = request.url.params["organization_id"]
        if organization == str(uuid.UUID(int=0)):
            return httpx.Response(404)
        return httpx.Response(200, json={"allowed": request.url.params["domain"] == "housing"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://upstream")
    agreements = AgreementClient("http://upstream", "tok", http=http)
    cases = CaseClient("http://upstream", "tok", http=http)
    unit, nav = uuid.uuid4(), uuid.uuid4()
    resolved = await agreements.resolve(unit, "0301", nav, ["housing", "work"])
    assert resolved.source == "default"
    assert seen[-1].url.params.get_list("domains") == ["housing", "work"]
    assert seen[-1].url.params["nav_office_id"] == str(nav)
    assert seen[-1].headers["authorization"] == "Bearer tok"
    assert (await agreements.resolve(unit, "9999", None)).source == "none"
    with pytest.raises(UpstreamError):
        await agreements.resolve(unit, "5000", None)
    case = uuid.uuid4()
    assert await cases.may_receive(case, uuid.uuid4(), "housing") is True
    assert await cases.may_receive(case, uuid.uuid4(), "work") is False
    assert await cases.may_receive(case, uuid.UUID(int=0), "housing") is False
    assert seen[-1].url.path == f"/api/v1/cases/{case}/disclosure"
    await http.aclose()
