"""A realistic run never leaves an identity number behind.

A journey through the three services uses several identity numbers: as they are meant to be used
(registering two persons, a duplicate, lookups that find and miss), and where they do not belong (in
URLs, JSON keys, free text, the ``X-Request-ID`` header and the token's subject). Afterwards
everything the run produced is searched for each number, in every way it was written: every
response body and header, every log line, the outbox rows of case-api, agreement-api and
notify-worker, and case-api's access-log and timeline rows.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notify_worker.notices.models import AgreementSource, NoticeKind, NoticeState, NotifyNotice, RecipientKind
from shared.db import unit_of_work
from shared.identifiers import make_identity_number
from shared.logging import configure_logging
from tests.case_api.conftest import Directory
from tests.conftest import auth, running, test_settings


def _number(born: date, individual: int, *, d_number: bool = False) -> str:
    while (number := make_identity_number(born, individual, d_number=d_number)) is None:
        individual += 1
    return number


PERSON = _number(date(1967, 8, 8), 407)  # 08086740746, registered
D_PERSON = _number(date(1985, 3, 12), 301, d_number=True)  # registered under a D-number
STRANGER = _number(date(1990, 1, 5), 120)  # looked up, never registered
SUBJECT = _number(date(1971, 11, 2), 33)  # a caller whose identity provider puts it in `sub`
REQUEST_ID = _number(date(2001, 6, 9), 512)  # sent as X-Request-ID
NUMBERS = {
    "the registered person's number": PERSON,
    "the D-number": D_PERSON,
    "the unregistered number": STRANGER,
    "the token subject": SUBJECT,
    "the X-Request-ID": REQUEST_ID,
}

CASE_TABLES = ("case_outbox", "case_access_log", "case_timeline")
OTHER_TABLES = ("agreement_outbox", "notify_outbox")


def _written_forms(number: str) -> re.Pattern[str]:
    """The number with or without a separator between its birth date and the rest, or as an
    integer that lost its leading zero."""
    forms = [re.escape(number[:6]) + r"[\s.\-]*" + re.escape(number[6:])]
    if number.startswith("0"):
        forms.append(r"(?<!\d)" + re.escape(number.lstrip("0")) + r"(?!\d)")
    return re.compile("|".join(forms))


class Recorder:
    """Every response the journey got, to be searched afterwards."""

    def __init__(self) -> None:
        self.responses: list[httpx.Response] = []

    def __call__(self, response: httpx.Response) -> httpx.Response:
        self.responses.append(response)
        return response

    def text(self) -> str:
        return "\n".join(
            f"{r.request.method} {r.status_code}\n{dict(r.headers)}\n{r.text}" for r in self.responses
        )


@pytest.fixture
async def notify_client(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    from notify_worker.main import create_app

    app = create_app(test_settings("notify_worker.config", database_url, dispatch_enabled=False))
    async with running(app, sessionmaker=sessionmaker) as client:
        yield client


async def _delivered_notice(
    sessionmaker: async_sessionmaker[AsyncSession], recipient: uuid.UUID
) -> uuid.UUID:
    now = datetime.now(UTC)
    notice = NotifyNotice(
        case_id=uuid.uuid4(),
        recipient_organization_id=recipient,
        recipient_kind=RecipientKind.MUNICIPALITY,
        agreement_source=AgreementSource.DEFAULT,
        kind=NoticeKind.MILESTONE,
        milestone_days=30,
        release_date=date(2027, 3, 1),
        due_at=now - timedelta(days=1),
        state=NoticeState.DELIVERED,
        receipt_deadline_days=5,
        delivered_at=now - timedelta(hours=1),
        receipt_due_at=now + timedelta(days=5),
    )
    async with unit_of_work(sessionmaker) as session:
        session.add(notice)
    return notice.id


async def _case_journey(client: httpx.AsyncClient, directory: Directory, seen: Recorder) -> None:
    # The coordinator's token carries an identity number as its subject; some requests send one
    # as X-Request-ID.
    coordinator = directory.headers("coordinator", directory.region_east, subject=SUBJECT)
    traced = {**coordinator, "X-Request-ID": REQUEST_ID}
    admin = directory.headers("admin", subject=SUBJECT)
    auditor = directory.headers("auditor")

    async def post(path: str, body: Any, headers: dict[str, str] = traced) -> httpx.Response:
        return seen(await client.post(f"/api/v1{path}", json=body, headers=headers))

    async def get(path: str, headers: dict[str, str] = traced) -> httpx.Response:
        return seen(await client.get(f"/api/v1{path}", headers=headers))

    # Persons: registered once each, a duplicate, lookups that find and miss.
    person = await post(
        "/persons", {"identity_number": PERSON, "given_name": "Kari", "family_name": "Nordmann"}
    )
    assert person.status_code == 201, person.text
    d_person = await post(
        "/persons", {"identity_number": D_PERSON, "given_name": "Jonas", "family_name": "Berg"}, coordinator
    )
    assert d_person.status_code == 201, d_person.text
    duplicate = await post("/persons", {"identity_number": PERSON, "given_name": "Kari", "family_name": "N"})
    assert duplicate.status_code == 409
    assert (await post("/persons/lookup", {"identity_number": PERSON})).status_code == 200
    assert (await post("/persons/lookup", {"identity_number": D_PERSON}, coordinator)).status_code == 200
    assert (await post("/persons/lookup", {"identity_number": STRANGER})).status_code == 404
    mistyped = PERSON[:10] + str((int(PERSON[10]) + 1) % 10)
    assert (await post("/persons/lookup", {"identity_number": mistyped})).status_code == 422

    # Cases for both, read back; the reads are logged.
    cases = []
    for registered in (person, d_person):
        opened = await post(
            "/cases",
            {
                "person_id": registered.json()["id"],
                "current_unit_id": str(directory.unit_oslo),
                "planning_basis": "final_judgment",
                "destination_note": "Wants to live near family in Halden.",
            },
        )
        assert opened.status_code == 201, opened.text
        cases.append(opened.json()["id"])
    case_id = cases[0]
    case = await get(f"/cases/{case_id}")
    assert case.status_code == 200
    assert (await get(f"/persons/{person.json()['id']}")).status_code == 200
    consent = await post(
        f"/cases/{case_id}/consents",
        {
            "basis": "consent",
            "domains": ["housing"],
            "organization_ids": [str(directory.oslo)],
            "note": "Signed.",
        },
    )
    assert consent.status_code == 201, consent.text
    release = await post(
        f"/cases/{case_id}/release-dates",
        {
            "kind": "expected",
            "date": "2031-03-14",
            "certainty": "probable",
            "source": "prison_administration",
        },
        {**traced, "If-Match": case.headers["etag"]},
    )
    assert release.status_code in (200, 201), release.text

    # Numbers where they do not belong: free text, URLs, JSON keys.
    for path, body in [
        (f"/cases/{case_id}/consents", {"basis": "consent", "domains": ["work"], "note": f"fnr {PERSON}"}),
        (
            f"/cases/{case_id}/group/members",
            {"person_name": f"Bror, {D_PERSON[:6]}-{D_PERSON[6:]}", "role": "other"},
        ),
        (
            f"/cases/{case_id}/release-dates",
            {"kind": "expected", "date": "2031-04-01", "note": f"fnr{PERSON}"},
        ),
        ("/persons", {"identity_number": PERSON, PERSON: 1}),
        ("/persons", {"identity_number": D_PERSON, f"fnr{STRANGER}": "x"}),
    ]:
        await post(path, body)  # each is a 422; the search below is what must hold
    seen(
        await client.patch(
            f"/api/v1/cases/{case_id}",
            json={"destination_note": f"{PERSON[:6]}.{PERSON[6:]}"},
            headers={**traced, "If-Match": case.headers["etag"]},
        )
    )
    for path in (f"/persons/{PERSON}", f"/persons/fnr{STRANGER}", f"/cases/{D_PERSON[:6]}-{D_PERSON[6:]}"):
        await get(path)

    # The audit trail, read by those who may.
    assert (await get(f"/cases/{case_id}/timeline")).status_code == 200
    assert (await get(f"/cases/{case_id}/access-log", admin)).status_code == 200
    assert (await get(f"/persons/{person.json()['id']}/access-log", auditor)).status_code == 200


async def _agreement_journey(client: httpx.AsyncClient, seen: Recorder) -> None:
    admin = {**auth("admin"), "X-Request-ID": REQUEST_ID}
    created = seen(
        await client.post(
            "/api/v1/organizations",
            json={"type": "municipality", "name": "Halden kommune", "kommunenummer": "3101"},
            headers=admin,
        )
    )
    assert created.status_code == 201, created.text
    organization = created.json()["id"]
    for path, body in [
        ("/api/v1/organizations", {"type": "ngo", "name": f"Kirkens Bymisjon {PERSON}"}),
        ("/api/v1/agreements", {"title": "Samarbeid", "routines": f"Meld fra om {D_PERSON}"}),
        (
            f"/api/v1/organizations/{organization}/webhooks",
            {"url": "https://x.example", "description": f"fnr{PERSON}"},
        ),
    ]:
        seen(await client.post(path, json=body, headers=admin))
    seen(await client.get(f"/api/v1/organizations/{PERSON}", headers=admin))


async def _notify_journey(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession], seen: Recorder
) -> None:
    recipient = uuid.uuid4()
    notice = await _delivered_notice(sessionmaker, recipient)
    headers = {
        **auth("municipality", org=str(recipient), subject="halden-fagsystem"),
        "X-Request-ID": REQUEST_ID,
    }
    url = f"/api/v1/notices/{notice}/receipts"
    seen(
        await client.post(
            url, json={"status": "rejected", "reason": f"Feil person: {PERSON}"}, headers=headers
        )
    )
    accepted = seen(
        await client.post(
            url,
            json={
                "status": "accepted",
                "contact": {"name": "Ola Hansen", "email": "ola.hansen@halden.kommune.no"},
                "substitute": {"name": "Eva Berg", "phone": "+47 22 00 00 00"},
            },
            headers=headers,
        )
    )
    assert accepted.status_code == 201, accepted.text
    seen(await client.get(f"/api/v1/notices/{D_PERSON}/receipts", headers=headers))


async def test_no_identity_number_is_left_anywhere_after_a_journey(
    case_client: httpx.AsyncClient,
    agreement_client: httpx.AsyncClient,
    notify_client: httpx.AsyncClient,
    directory: Directory,
    sessionmaker: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen = Recorder()
    capsys.readouterr()
    configure_logging(level="INFO", json=True)
    try:
        await _case_journey(case_client, directory, seen)
        await _agreement_journey(agreement_client, seen)
        await _notify_journey(notify_client, sessionmaker, seen)
        logged = capsys.readouterr().err
    finally:
        configure_logging(level="INFO", json=False)

    async with sessionmaker() as session:
        rows = {
            table: list((await session.execute(text(f"SELECT t::text FROM {table} t"))).scalars())
            for table in (*CASE_TABLES, *OTHER_TABLES)
        }
    # The journey produced what it is searched for.
    assert all(rows[table] for table in rows), {table: len(found) for table, found in rows.items()}
    assert '"event": "http.request"' in logged
    assert len(seen.responses) > 30

    produced = {
        "responses": seen.text(),
        "log": logged,
        **{table: "\n".join(found) for table, found in rows.items()},
    }
    leaks = sorted(
        {
            f"{name} in {where}"
            for name, number in NUMBERS.items()
            for where, content in produced.items()
            if _written_forms(number).search(content)
        }
    )
    assert not leaks, leaks
