"""Free text in every service refuses an identity number: 422 naming the field, without the value.

One rule (shared.free_text, the rule the logs mask) for case-api's notes, reasons, decisions and
names, agreement-api's agreement texts, contacts, webhook descriptions and organization names, and
notify-worker's receipts. The body is refused before the route looks anything up, so the ids in
the paths need not exist.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.free_text import IDENTITY_NUMBER_REFUSED
from tests.conftest import auth, running, test_settings

FNR = "08086740746"
D_NUMBER = "52038530283"
WRITTEN = [
    f"Personen har fnr {FNR}.",
    f"fnr{FNR}",
    f"{FNR[:6]}-{FNR[6:]} (fra dommen)",
    f"D-nr. {D_NUMBER[:6]}.{D_NUMBER[6:]}",
    f"{D_NUMBER[:6]} {D_NUMBER[6:]}",
]
TEXT = WRITTEN[0]
ID = "3f1c2a9e-6a4b-4d2e-9c1f-0a1b2c3d4e5f"
CASE = f"/api/v1/cases/{ID}"
MARKET = "/api/v1/market"
AGREEMENT = f"/api/v1/agreements/{ID}"

CASE_API = [
    ("POST", "/api/v1/cases", {"destination_note": TEXT}, "body.destination_note"),
    ("PATCH", CASE, {"destination_note": TEXT}, "body.destination_note"),
    ("POST", f"{CASE}/status", {"status": "closed", "reason": TEXT}, "body.reason"),
    ("POST", f"{CASE}/transfer", {"to_unit_id": ID, "reason": TEXT}, "body.reason"),
    ("POST", f"{CASE}/consents", {"basis": "legal_basis", "legal_reference": TEXT}, "body.legal_reference"),
    ("POST", f"{CASE}/consents", {"basis": "consent", "note": TEXT}, "body.note"),
    ("POST", f"{CASE}/consents/{ID}/withdraw", {"reason": TEXT}, "body.reason"),
    ("PATCH", f"{CASE}/domains/housing", {"needs": TEXT}, "body.needs"),
    ("PATCH", f"{CASE}/domains/housing", {"goals": TEXT}, "body.goals"),
    ("POST", f"{CASE}/domains/housing/actions", {"description": TEXT}, "body.description"),
    ("POST", f"{CASE}/domains/housing/actions", {"contact_name": TEXT}, "body.contact_name"),
    ("PATCH", f"{CASE}/domains/housing/actions/{ID}", {"description": TEXT}, "body.description"),
    ("POST", f"{CASE}/group/members", {"person_name": TEXT}, "body.person_name"),
    ("PATCH", f"{CASE}/group/members/{ID}", {"person_name": TEXT}, "body.person_name"),
    ("POST", f"{CASE}/meetings", {"place": TEXT}, "body.place"),
    ("POST", f"{CASE}/meetings", {"minutes_reference": TEXT}, "body.minutes_reference"),
    (
        "PUT",
        f"{CASE}/meetings/{ID}/attendance",
        {"attendance": [{"member_id": ID, "note": TEXT}]},
        "body.attendance.0.note",
    ),
    ("POST", f"{CASE}/meetings/{ID}/decisions", {"domain": "housing", "decision": TEXT}, "body.decision"),
    ("PUT", f"{CASE}/municipality", {"status": "kommunelos", "note": TEXT}, "body.note"),
    ("POST", f"{CASE}/release-dates", {"note": TEXT}, "body.note"),
    ("POST", "/api/v1/persons", {"given_name": TEXT, "identity_number": FNR}, "body.given_name"),
    ("POST", "/api/v1/persons", {"family_name": TEXT, "identity_number": FNR}, "body.family_name"),
    ("POST", f"{MARKET}/providers", {"name": TEXT}, "body.name"),
    ("PATCH", f"{MARKET}/providers/{ID}", {"name": TEXT}, "body.name"),
    ("POST", f"{MARKET}/sessions", {"location_note": TEXT}, "body.location_note"),
    ("POST", f"{MARKET}/sessions", {"announcement": TEXT}, "body.announcement"),
    ("POST", f"{MARKET}/sessions/{ID}/cancel", {"reason": TEXT, "cause": "other"}, "body.reason"),
    ("POST", f"{MARKET}/requests", {"note": TEXT}, "body.note"),
    ("POST", f"{MARKET}/appointments/{ID}/transitions", {"to": "cancelled", "reason": TEXT}, "body.reason"),
    ("POST", f"{MARKET}/appointments/{ID}/complete", {"referral_note": TEXT}, "body.referral_note"),
]

AGREEMENT_API = [
    ("POST", "/api/v1/agreements", {"title": TEXT}, "body.title"),
    ("POST", "/api/v1/agreements", {"routines": TEXT}, "body.routines"),
    ("POST", "/api/v1/agreements", {"document_references": ["ok", TEXT]}, "body.document_references.1"),
    ("POST", "/api/v1/agreements", {"contacts": [{"name": TEXT}]}, "body.contacts.0.name"),
    ("POST", "/api/v1/agreements", {"contacts": [{"name": "Ola", "role": TEXT}]}, "body.contacts.0.role"),
    (
        "POST",
        "/api/v1/agreements",
        {"parties": [{"organization_id": ID, "role": TEXT}]},
        "body.parties.0.role",
    ),
    ("PATCH", AGREEMENT, {"routines": TEXT}, "body.routines"),
    ("POST", f"{AGREEMENT}/status", {"status": "negotiating", "reason": TEXT}, "body.reason"),
    ("POST", "/api/v1/organizations", {"type": "ngo", "name": TEXT}, "body.name"),
    ("PATCH", f"/api/v1/organizations/{ID}", {"name": TEXT}, "body.name"),
    ("POST", f"/api/v1/organizations/{ID}/webhooks", {"description": TEXT}, "body.description"),
    ("PATCH", f"/api/v1/webhooks/{ID}", {"description": TEXT}, "body.description"),
    ("POST", f"/api/v1/webhooks/{ID}/disable", {"reason": TEXT}, "body.reason"),
]

NOTIFY_WORKER = [
    ("POST", f"/api/v1/notices/{ID}/receipts", {"status": "rejected", "reason": text}, "body.rejected.reason")
    for text in WRITTEN
]


def assert_refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    refused = [error for error in response.json()["errors"] if error["field"] == field]
    assert refused, response.json()["errors"]
    assert IDENTITY_NUMBER_REFUSED in refused[0]["message"]
    for number in (FNR, D_NUMBER):
        assert number[:6] not in response.text, "the value is never repeated"


@pytest.mark.parametrize(("method", "path", "body", "field"), CASE_API)
async def test_case_api_refuses_an_identity_number_in_free_text(
    case_client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = await case_client.request(method, path, json=body, headers=auth("admin"))
    assert_refused(response, field)


@pytest.mark.parametrize("text", WRITTEN)
async def test_every_written_form_is_refused(case_client: httpx.AsyncClient, text: str) -> None:
    response = await case_client.post(f"{CASE}/release-dates", json={"note": text}, headers=auth("admin"))
    assert_refused(response, "body.note")


async def test_free_text_without_an_identity_number_passes_the_check(case_client: httpx.AsyncClient) -> None:
    # Dates, phone numbers, case numbers and kommunenummer are not identity numbers.
    note = "Ring 22 00 00 00 eller +47 915 55 555 før 08.08.2027; saksnr. 24/01234, kommune 0301."
    response = await case_client.post(f"{CASE}/release-dates", json={"note": note}, headers=auth("admin"))
    assert response.status_code == 422  # the other fields are missing; the note is not among them
    assert "body.note" not in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(("method", "path", "body", "field"), AGREEMENT_API)
async def test_agreement_api_refuses_an_identity_number_in_free_text(
    agreement_client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = await agreement_client.request(method, path, json=body, headers=auth("admin"))
    assert_refused(response, field)


@pytest.fixture
async def notify_client(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    from notify_worker.main import create_app

    app = create_app(test_settings("notify_worker.config", database_url, dispatch_enabled=False))
    async with running(app, sessionmaker=sessionmaker) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "body", "field"), NOTIFY_WORKER)
async def test_notify_worker_refuses_an_identity_number_in_a_receipt(
    notify_client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    headers = auth("municipality", org=str(uuid.uuid4()), subject="halden-fagsystem")
    response = await notify_client.request(method, path, json=body, headers=headers)
    assert_refused(response, field)
