"""The README's run command: every service up on SQLite with the in-process bus, demo receiver listening."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shared.identifiers import make_identity_number
from shared.settings import REPO_ROOT
from tests.embedded import PORTS, run_embedded
from tests.infra import free_base_port


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, float, list[str]]]:
    with run_embedded(tmp_path_factory.mktemp("embedded"), free_base_port(PORTS)) as running:
        yield running.base, running.data_dir, running.elapsed, running.lines


def _new_person(case_api: str, headers: dict[str, str], birth: date, family_name: str) -> tuple[str, str]:
    """The id and identity number of a person registered now, with no case yet: a number taken
    earlier in the same data folder may have an open case, and a person has one at a time."""
    for individual in range(500):
        number = make_identity_number(birth, individual)
        if number is None:
            continue
        person = httpx.post(
            f"{case_api}/persons",
            json={"identity_number": number, "given_name": "Demo", "family_name": family_name},
            headers=headers,
        )
        if person.status_code == 201:
            return str(person.json()["id"]), number
        assert person.status_code == 409, person.text
    raise AssertionError(f"every identity number of {birth} is registered")


def test_all_services_answer_healthz_within_15_seconds(embedded: tuple[int, Path, float, list[str]]) -> None:
    base, _data_dir, elapsed, _ = embedded
    assert elapsed < 15
    names = [
        httpx.get(f"http://127.0.0.1:{port}/healthz").json().get("service") for port in range(base, base + 3)
    ]
    assert names == ["case-api", "agreement-api", "notify-worker"]


def test_demo_directory_is_loaded_and_readable_with_a_dev_token(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    base = embedded[0]
    token = subprocess.run(
        [sys.executable, "-m", "tilbake.cli", "token", "--role", "coordinator"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    response = httpx.get(
        f"http://127.0.0.1:{base + 1}/api/v1/organizations?type=region",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert {o["name"] for o in response.json()["items"]} == {
        "Region nord",
        "Region sør",
        "Region sørvest",
        "Region vest",
        "Region øst",
    }


def test_events_flow_through_the_in_process_bus_to_the_worker(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    import sqlite3

    data_dir = embedded[1]
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(data_dir / "embedded.sqlite3") as db:
            published = db.execute(
                "SELECT count(*) FROM agreement_outbox WHERE published_at IS NOT NULL"
            ).fetchone()[0]
            # Only agreement-api's: the worker also consumes case events (the demo market's cases).
            consumed = db.execute(
                "SELECT count(*) FROM notify_inbox WHERE event_id IN"
                " (SELECT id FROM agreement_outbox WHERE published_at IS NOT NULL)"
            ).fetchone()[0]
        if (published and consumed == published) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert published > 0
    assert consumed == published


def test_demo_receiver_accepts_signed_notices_and_refuses_forged_ones(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    base, data_dir, _elapsed, _ = embedded
    secret = json.loads((data_dir / "demo-endpoint.json").read_text())["secret"]
    url = f"http://127.0.0.1:{base + 3}/webhooks"
    body = json.dumps({"type": "notice.test.v1", "case": "case/demo"})
    msg_id = "msg_" + secrets.token_hex(8)
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, now, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    assert httpx.post(url, content=body, headers=headers).status_code == 200
    other = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    forged = {**headers, "webhook-signature": Webhook(other).sign(msg_id, now, body)}
    assert httpx.post(url, content=body, headers=forged).status_code == 401


def test_a_case_flows_to_the_notice_schedule_in_one_process(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    """Across the three services on their real ports: open a case with a release date and
    responsible municipality; notify-worker schedules notices, held for want of consent."""
    import sqlite3
    from datetime import timedelta

    from shared.auth import mint_token

    base, data_dir = embedded[0], embedded[1]
    admin = {"Authorization": f"Bearer {mint_token(role='admin')}"}
    units = httpx.get(
        f"http://127.0.0.1:{base + 1}/api/v1/organizations?type=prison&limit=200", headers=admin
    ).json()["items"]
    oslo = next(u for u in units if u["name"] == "Oslo fengsel")
    coordinator = {
        "Authorization": f"Bearer {mint_token(role='coordinator', organization_id=oslo['parent_id'])}"
    }
    case_api = f"http://127.0.0.1:{base}/api/v1"
    person_id, _number = _new_person(case_api, coordinator, date(1990, 2, 3), "Person")
    case = httpx.post(
        f"{case_api}/cases",
        json={"person_id": person_id, "current_unit_id": oslo["id"], "planning_basis": "final_judgment"},
        headers=coordinator,
    )
    assert case.status_code == 201, case.text
    url = f"{case_api}/cases/{case.json()['id']}"
    municipality = httpx.put(
        f"{url}/municipality",
        json={"responsible_kommunenummer": "0301", "status": "confirmed"},
        headers={**coordinator, "If-Match": case.headers["etag"]},
    )
    assert municipality.status_code == 200, municipality.text
    release = httpx.post(
        f"{url}/release-dates",
        json={
            "kind": "expected",
            "date": (date.today() + timedelta(days=45)).isoformat(),
            "certainty": "probable",
            "source": "judgment",
        },
        headers={**coordinator, "If-Match": municipality.headers["etag"]},
    )
    assert release.status_code in (200, 201), release.text
    deadline = time.monotonic() + 15
    rows: list[tuple[str, str | None]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(data_dir / "embedded.sqlite3") as db:
            rows = db.execute(
                "SELECT state, hold_reason FROM notify_notice WHERE case_id = ?",
                (case.json()["id"].replace("-", ""),),
            ).fetchall()
            if not rows:
                rows = db.execute(
                    "SELECT state, hold_reason FROM notify_notice WHERE case_id = ?", (case.json()["id"],)
                ).fetchall()
        if rows:
            break
        time.sleep(0.2)
    assert rows, "notify-worker scheduled nothing"
    assert {state for state, _reason in rows} == {"held"}
    assert {reason for _state, reason in rows} == {"no_consent"}


def test_the_demo_municipality_receives_a_signed_notice(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    """The central moment without editing files: a case with Halden kommune responsible, consent and
    a release date inside the lead time reaches the demo receiver, signed with the issued secret."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from shared.auth import mint_token

    base, lines = embedded[0], embedded[3]
    agreement_api = f"http://127.0.0.1:{base + 1}/api/v1"
    case_api = f"http://127.0.0.1:{base}/api/v1"
    admin = {"Authorization": f"Bearer {mint_token(role='admin')}"}

    def organization(kind: str, name: str) -> dict[str, str]:
        items = httpx.get(f"{agreement_api}/organizations?type={kind}&limit=500", headers=admin).json()[
            "items"
        ]
        return next(item for item in items if item["name"] == name)

    region = organization("region", "Region øst")
    halden = organization("municipality", "Halden kommune")
    prison = organization("prison", "Halden fengsel")
    nav = organization("nav_office", "NAV Halden (demo)")
    coordinator = {"Authorization": f"Bearer {mint_token(role='coordinator', organization_id=region['id'])}"}

    agreement = httpx.post(
        f"{agreement_api}/agreements",
        json={
            "title": "Samarbeidsavtale Halden (demo)",
            "level": "local",
            "valid_from": "2020-01-01",
            "valid_to": None,
            "meeting_cadence": "quarterly",
            "domains": ["housing", "work"],
            "parties": [{"organization_id": region["id"]}, {"organization_id": halden["id"]}],
        },
        headers=coordinator,
    )
    assert agreement.status_code == 201, agreement.text
    agreement_url = f"{agreement_api}/agreements/{agreement.json()['id']}"
    rules = httpx.post(
        f"{agreement_url}/rules",
        json={
            "recipient_organization_type": "municipality",
            "milestones": [{"days_before_release": 30}],
            "receipt_deadline_days": 3,
            "data_sharing_profile": {"domains": ["housing"], "fields": ["release_date", "unit"]},
        },
        headers=admin,
    )
    assert rules.status_code == 201, rules.text
    for status in ("negotiating", "signed", "active"):
        etag = httpx.get(agreement_url, headers=admin).headers["etag"]
        changed = httpx.post(
            f"{agreement_url}/status", json={"status": status}, headers={**coordinator, "If-Match": etag}
        )
        assert changed.status_code == 200, changed.text

    person_id, number = _new_person(case_api, admin, date(1984, 7, 9), "Mottaker")
    case = httpx.post(
        f"{case_api}/cases",
        json={
            "person_id": person_id,
            "current_unit_id": prison["id"],
            "nav_office_id": nav["id"],
            "planning_basis": "final_judgment",
        },
        headers=admin,
    )
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]
    case_url = f"{case_api}/cases/{case_id}"

    def etag() -> str:
        return str(httpx.get(case_url, headers=admin).headers["etag"])

    municipality = httpx.put(
        f"{case_url}/municipality",
        json={"responsible_kommunenummer": "3101", "status": "confirmed"},
        headers={**admin, "If-Match": etag()},
    )
    assert municipality.status_code == 200, municipality.text
    member = httpx.post(
        f"{case_url}/group/members",
        json={"person_name": "Kari Koordinator", "role": "coordinator", "organization_id": prison["id"]},
        headers=admin,
    )
    assert member.status_code == 201, member.text
    consent = httpx.post(
        f"{case_url}/consents",
        json={"basis": "consent", "organization_ids": [halden["id"]], "domains": ["housing"]},
        headers=admin,
    )
    assert consent.status_code == 201, consent.text

    release_day = datetime.now(ZoneInfo("Europe/Oslo")).date() + timedelta(days=10)
    started = time.monotonic()
    release = httpx.post(
        f"{case_url}/release-dates",
        json={
            "kind": "expected",
            "date": release_day.isoformat(),
            "certainty": "probable",
            "source": "judgment",
        },
        headers={**admin, "If-Match": etag()},
    )
    assert release.status_code in (200, 201), release.text

    notice = None
    while notice is None and time.monotonic() - started < 60:
        for line in list(lines):
            if line.startswith("[receiver] verified ") and case_id in line:
                body = json.loads(line.split(": ", 1)[1])
                if body.get("case_id") == case_id:
                    notice = body
        time.sleep(0.1)
    took = time.monotonic() - started
    assert notice is not None, "no verified notice: " + "".join(
        line for line in lines if "[receiver]" in line
    )
    print(f"\nembedded mode: release date to verified notice in {took:.2f} s")
    assert notice["type"] == "notice.release_upcoming.v1"
    assert notice["recipient_organization_id"] == halden["id"]
    assert notice["detail_url"] == f"{case_url}/notice-detail"
    assert number not in "".join(lines), "no identity number in the output"


async def test_a_restart_reuses_the_demo_endpoint_and_follows_the_base_port(tmp_path: Path) -> None:
    """The issued secret is kept in the data dir: a restart registers no second endpoint."""
    import asyncio
    import sqlite3

    import agreement_api.config
    from tilbake.embedded import runner

    database_url = f"sqlite+aiosqlite:///{tmp_path / 'embedded.sqlite3'}"
    await asyncio.to_thread(runner.migrate, database_url)
    await runner._load_demo_data(database_url)
    settings = agreement_api.config.Settings(
        env="dev", database_url=database_url, allow_private_webhook_urls=True, allow_http_webhooks=True
    )
    first = await runner._demo_endpoint(database_url, tmp_path, "http://127.0.0.1:9004/webhooks", settings)
    again = await runner._demo_endpoint(database_url, tmp_path, "http://127.0.0.1:9104/webhooks", settings)
    assert again == first
    with sqlite3.connect(tmp_path / "embedded.sqlite3") as db:
        urls = db.execute("SELECT url FROM agreement_webhook_endpoint").fetchall()
    assert urls == [("http://127.0.0.1:9104/webhooks",)]


def _demo_market_line(lines: list[str], within: float = 60) -> str:
    """The line the embedded mode prints when the demo market's week is in (after the banner)."""
    deadline = time.monotonic() + within
    while not (found := [line for line in list(lines) if line.startswith("[demo market] ")]):
        assert time.monotonic() < deadline, "no [demo market] line: " + "".join(lines)
        time.sleep(0.05)
    return found[0]


def _demo_market_directory(base: int) -> tuple[dict[str, str], Any]:
    """An admin's headers and the demo market's directory ids, looked up in agreement-api."""
    from shared.auth import mint_token
    from tilbake.embedded import market_demo

    admin = {"Authorization": f"Bearer {mint_token(role='admin')}"}
    organizations = f"http://127.0.0.1:{base + 1}/api/v1/organizations"

    def named(kind: str, name: str) -> dict[str, str]:
        items = httpx.get(f"{organizations}?type={kind}&limit=500", headers=admin).json()["items"]
        return next(item for item in items if item["name"] == name)

    unit = named("prison", market_demo.UNIT_NAME)
    directory = market_demo.Directory(
        unit_id=uuid.UUID(unit["id"]),
        region_id=uuid.UUID(unit["parent_id"]),
        municipality_id=uuid.UUID(named("municipality", "Halden kommune")["id"]),
        nav_office_id=uuid.UUID(named("nav_office", "NAV Halden (demo)")["id"]),
    )
    return admin, directory


def test_the_demo_week_is_on_the_service_market_day_list(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    """The staff page's day list has the demo sessions today and on each day around it: done ones
    with check-ins and outcomes before today, some to check in today, planned ones after."""
    from datetime import timedelta

    from shared.auth import mint_token
    from shared.clock import OSLO
    from tilbake.embedded import market_demo

    base, lines = embedded[0], embedded[3]
    added = _demo_market_line(lines)
    assert added.startswith("[demo market] Halden fengsel: 12 sessions and "), added
    _admin, directory = _demo_market_directory(base)
    assert f"--role service_market --org {directory.unit_id}" in "".join(lines), "the banner names the unit"

    desk = {
        "Authorization": f"Bearer {mint_token(role='service_market', organization_id=str(directory.unit_id))}"
    }
    today = datetime.now(OSLO).date()
    names = {provider.name for provider in market_demo.PROVIDERS}
    states: dict[int, set[str]] = {}
    for offset in range(-market_demo.WINDOW_DAYS, market_demo.WINDOW_DAYS + 1):
        answer = httpx.get(
            f"http://127.0.0.1:{base}/api/v1/market/day-list",
            params={"unit_id": str(directory.unit_id), "date": (today + timedelta(days=offset)).isoformat()},
            headers=desk,
        )
        assert answer.status_code == 200, answer.text
        day_list = answer.json()
        assert day_list["sessions"], f"no demo session {offset} days from today"
        assert {s["provider_name"] for s in day_list["sessions"]} <= names
        assert not day_list["conflicts"], day_list["conflicts"]
        states[offset] = {entry["state"] for entry in day_list["entries"]}
    assert "checked_in" in states[0] or "completed" in states[0]
    assert "escort_confirmed" in states[0], "today has inmates to check in"
    assert "completed" in set().union(*(states[d] for d in range(-market_demo.WINDOW_DAYS, 0)))
    assert states[1] <= {"scheduled", "requested"}


async def test_the_demo_week_is_added_once_and_follows_the_days(
    embedded: tuple[int, Path, float, list[str]],
) -> None:
    """Loading again adds nothing; two days later only the two new days of the window are added."""
    from datetime import timedelta

    from shared.clock import OSLO
    from tilbake.embedded import market_demo

    base = embedded[0]
    _demo_market_line(embedded[3])  # the start's own load has ended
    _admin, directory = _demo_market_directory(base)
    now = datetime.now(UTC)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30) as client:
        again = await market_demo.load(client, directory, now=now)
        later = await market_demo.load(client, directory, now=now + timedelta(days=2))
    assert again.days == []
    assert again.sessions == 0
    today = now.astimezone(OSLO).date()
    assert later.days == [today + timedelta(days=market_demo.WINDOW_DAYS + n) for n in (1, 2)]
    assert later.sessions == sum(len(market_demo.WEEK[day.weekday()]) for day in later.days)
