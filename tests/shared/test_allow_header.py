"""A 405 names in ``Allow`` every method the path answers, also when several routes share it."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import test_settings

ID = "6f1c2a4e-1b7d-4c8e-9a35-0d2f4b6e8a10"  # fixed: test ids must be the same on every xdist worker

CASES = [
    ("case_api", "DELETE", "/api/v1/cases", "GET, POST"),
    ("case_api", "PUT", f"/api/v1/cases/{ID}", "GET, PATCH"),
    ("case_api", "DELETE", f"/api/v1/market/units/{ID}/capacity", "GET, PUT"),
    ("case_api", "POST", "/healthz", "GET"),
    ("agreement_api", "PUT", f"/api/v1/agreements/{ID}/rules/{ID}", "DELETE, GET, PATCH"),
    ("agreement_api", "DELETE", "/api/v1/organizations", "GET, POST"),
    ("notify_worker", "DELETE", f"/api/v1/notices/{ID}/receipts", "GET, POST"),
    ("notify_worker", "PATCH", "/readyz", "GET"),
]


@pytest.mark.parametrize(("service", "method", "path", "allow"), CASES)
async def test_allow_lists_every_method_of_the_path(service: str, method: str, path: str, allow: str) -> None:
    import importlib

    create_app = importlib.import_module(f"{service}.main").create_app
    app = create_app(test_settings(f"{service}.config", "postgresql+asyncpg://unused@127.0.0.1/unused"))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
