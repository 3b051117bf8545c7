"""The day-list page in a real headless Chromium against case-api served by uvicorn.

Uses Debian's chromium (`apt-get install chromium`), never a browser downloaded by Playwright. The
run leaves a screenshot of the page in the test's temporary folder; with
TILBAKE_UPDATE_SCREENSHOTS=1 it also refreshes docs/screenshots/servicetorg-day-list.png."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.access import Viewer
from case_api.cases import service as cases
from case_api.cases.schemas import CaseCreate
from case_api.main import create_app
from case_api.market import appointments, providers, sessions
from case_api.market.models import AppointmentState, MarketAppointment
from case_api.market.schemas import AppointmentCreate, AppointmentTransition, ProviderCreate, SessionCreate
from case_api.market.sessions import LOCAL_TZ
from case_api.organizations import service as organizations
from case_api.persons import service as persons
from case_api.persons.crypto import IdentityVault
from case_api.persons.schemas import PersonCreate
from shared.auth import Principal, Role, mint_token
from shared.db import unit_of_work
from shared.settings import REPO_ROOT
from tests.case_api.conftest import identity_number
from tests.conftest import test_settings
from tests.infra import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOT = REPO_ROOT / "docs" / "screenshots" / "servicetorg-day-list.png"
TABLET = {"width": 1180, "height": 820}  # a 10.9" tablet in landscape, CSS pixels


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser test needs Debian's chromium. "
            "Install it with `apt-get update && apt-get install -y chromium` (.ci/run does this); "
            "do not run `playwright install`.",
            pytrace=False,
        )


class InTestServer(uvicorn.Server):
    """uvicorn inside the test's event loop, leaving the process's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Market:
    base_url: str
    unit: uuid.UUID
    kari: uuid.UUID  # scheduled: the test checks her in


def today_at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(datetime.now(LOCAL_TZ).date(), time(hour, minute), tzinfo=LOCAL_TZ)


async def seed(
    sessionmaker: async_sessionmaker[AsyncSession], vault: IdentityVault
) -> tuple[uuid.UUID, uuid.UUID]:
    """A unit, two providers, two sessions today and three appointments, through the service layer."""
    region, unit, nav, ngo = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with unit_of_work(sessionmaker) as session:
        await organizations.upsert(session, organization_id=region, type="region", name="Region øst")
        await organizations.upsert(
            session, organization_id=unit, type="prison", name="Oslo fengsel", parent_id=region
        )
        await organizations.upsert(session, organization_id=nav, type="nav_office", name="NAV Grünerløkka")
        await organizations.upsert(session, organization_id=ngo, type="ngo", name="Røde Kors")
    async with unit_of_work(sessionmaker) as session:
        staff = Viewer(
            principal=Principal(subject="seed", role=Role.PRISON_STAFF, organization_id=str(unit)),
            organization=await organizations.get(session, unit),
            region_id=region,
        )
        nav_provider = await providers.create_provider(
            session,
            viewer=staff,
            data=ProviderCreate(organization_id=nav, name="NAV Grünerløkka", kind="nav"),
        )
        housing = await providers.create_provider(
            session,
            viewer=staff,
            data=ProviderCreate(organization_id=ngo, name="Røde Kors nettverk", kind="volunteer"),
        )
        slots = []
        for provider, start, hours, note in (
            (nav_provider, today_at(10), 2, "Rom 2"),
            (housing, today_at(13, 30), 1.5, "Biblioteket"),
        ):
            (slot,) = await sessions.create_sessions(
                session,
                viewer=staff,
                data=SessionCreate(
                    unit_id=unit,
                    provider_id=provider.id,
                    format="one_to_one",
                    location_type="service_market_room",
                    location_note=note,
                    starts_at=start,
                    ends_at=start + timedelta(hours=hours),
                    capacity=4,
                    domains=["work"],
                    announcement=f"{provider.name} er på servicetorget. Lever samtalelapp for å få en time.",
                ),
            )
            slots.append(slot)
        booked = []
        for (given, family), slot, state, extra in (
            (("Kari", "Nordmann"), slots[0], AppointmentState.SCHEDULED, {"escort_officers": 2}),
            (("Ola", "Hansen"), slots[0], AppointmentState.ESCORT_CONFIRMED, {"needs_lift": True}),
            (("Aisha", "Berg"), slots[1], AppointmentState.SCHEDULED, {"high_security": True}),
        ):
            person = await persons.register(
                session,
                viewer=staff,
                vault=vault,
                data=PersonCreate(identity_number=identity_number(), given_name=given, family_name=family),
            )
            case, _person = await cases.open_case(
                session,
                viewer=staff,
                data=CaseCreate(person_id=person.id, current_unit_id=unit, planning_basis="final_judgment"),
            )
            appointment = await appointments.book(
                session, viewer=staff, data=AppointmentCreate(session_id=slot.id, case_id=case.id, **extra)
            )
            if state is not appointment.state:
                await appointments.transition(
                    session, viewer=staff, appointment=appointment, data=AppointmentTransition(to=state)
                )
            booked.append(appointment.id)
    return unit, booked[0]


@pytest.fixture
async def live_market(
    database_url: str, committed_sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Market]:
    settings = test_settings("case_api.config", database_url)
    vault = IdentityVault(
        hash_key=settings.identity_hash_key, encryption_keys=settings.identity_encryption_keys
    )
    unit, kari = await seed(committed_sessionmaker, vault)
    port = free_port()
    server = InTestServer(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield Market(base_url=f"http://127.0.0.1:{port}", unit=unit, kari=kari)
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=30)


async def test_staff_sign_in_and_check_in_with_one_tap_in_a_real_browser(
    live_market: Market, committed_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    token = mint_token(role="service_market", subject="servicetorg-1", organization_id=str(live_market.unit))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport=TABLET, has_touch=True, locale="nb-NO")
            page = await context.new_page()
            await page.goto(f"{live_market.base_url}/market/ui/day")
            assert page.url.endswith("/market/ui/login"), page.url
            await expect(page.locator("html")).to_have_attribute("lang", "nb")
            await page.get_by_label("Lim inn tilgangstokenet ditt").fill(token)
            async with page.expect_request(
                lambda r: r.method == "POST" and r.url.endswith("/market/ui/login")
            ) as login_request:
                await page.get_by_role("button", name="Logg inn", exact=True).click()
            await page.wait_for_url("**/market/ui/day")
            # The form's own Origin, which the login's Origin check lets through (not `null`).
            sent = await (await login_request.value).all_headers()
            assert sent.get("origin") == live_market.base_url, sent
            await expect(
                page.get_by_role("heading", name="10:00\N{EN DASH}12:00 · NAV Grünerløkka")
            ).to_be_visible()
            for name in ("Kari N.", "Ola H.", "Aisha B."):
                await expect(page.locator(".who", has_text=name)).to_be_visible()

            button = page.get_by_role("button", name="Sjekk inn Kari N.")
            box = await button.bounding_box()
            assert box is not None
            assert box["height"] >= 44, "touch targets are at least 44 CSS pixels high"
            await button.click()
            await page.wait_for_url("**notice=checked_in")
            await expect(page.get_by_role("status")).to_have_text("Oppmøte registrert.")
            kari = page.locator(f"#appointment-{live_market.kari}")
            await expect(kari).to_have_attribute("data-state", "checked_in")
            await expect(kari.get_by_label("Utfall", exact=True)).to_be_visible()

            async with committed_sessionmaker() as session:
                state = (
                    await session.execute(
                        select(MarketAppointment.state).where(MarketAppointment.id == live_market.kari)
                    )
                ).scalar_one()
            assert state is AppointmentState.CHECKED_IN

            # One switch to English and back, kept by the cookie from page to page.
            await page.get_by_role("link", name="English").click()
            await expect(page.locator("html")).to_have_attribute("lang", "en")
            await expect(kari.get_by_role("button", name="Save outcome for Kari N.")).to_be_visible()
            await page.get_by_role("link", name="Announcement sheet").click()
            await expect(page.get_by_role("heading", name="Service market at Oslo fengsel")).to_be_visible()
            await expect(page.locator("p.text[lang=nb]").first).to_contain_text("er på servicetorget")
            await page.get_by_role("link", name="Norsk").click()
            await expect(page.get_by_role("heading", name="Servicetorget i Oslo fengsel")).to_be_visible()
            await page.get_by_role("link", name="Dagsliste").click()
            await expect(page.locator("html")).to_have_attribute("lang", "nb")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shot = tmp_path / SCREENSHOT.name
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000, "the screenshot is empty"
            if os.environ.get("TILBAKE_UPDATE_SCREENSHOTS") == "1":
                SCREENSHOT.write_bytes(shot.read_bytes())
            await context.close()
        finally:
            await browser.close()
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
