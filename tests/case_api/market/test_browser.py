"""The staff pages in a real headless Chromium against case-api served by uvicorn: the one-tap
check-in, axe-core on every page in both languages, reflow at 320 px and 200 % text, and the
warning before the sign-in expires.

Uses Debian's chromium (`apt-get install chromium`), never a browser downloaded by Playwright;
axe-core comes bundled in the `axe-playwright-python` package. The run leaves a screenshot of the
day list in the test's temporary folder; with TILBAKE_UPDATE_SCREENSHOTS=1 it also refreshes
docs/screenshots/servicetorg-day-list.png."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from case_api.market.web import COOKIE
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

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

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
PORTRAIT = {"width": 768, "height": 1024}  # a small tablet upright: with 200 % text (WCAG 1.4.4)
NARROW = {"width": 320, "height": 640}  # WCAG 1.4.10 reflow: 320 CSS pixels, no sideways scrolling
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
UI = "/market/ui"


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


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def staff_token(market: Market, **overrides: Any) -> str:
    claims: dict[str, Any] = {
        "role": "service_market",
        "subject": "servicetorg-1",
        "organization_id": str(market.unit),
    }
    return mint_token(**{**claims, **overrides})


async def sign_in(page: Page, market: Market, token: str, *, lang: str = "nb") -> None:
    """Through the login form, in ``lang``, to the day list."""
    await page.goto(f"{market.base_url}{UI}/login?lang={lang}")
    label, button = {
        "nb": ("Lim inn tilgangstokenet ditt", "Logg inn"),
        "en": ("Paste your access token", "Sign in"),
    }[lang]
    await page.get_by_label(label).fill(token)
    await page.get_by_role("button", name=button, exact=True).click()
    await page.wait_for_url("**/market/ui/day**")


async def expire_sign_in(context: BrowserContext, market: Market) -> None:
    """The sign-in cookie as it is once the token has run out (the same name, host and path)."""
    expired = staff_token(market, ttl_seconds=-120)
    host = market.base_url.split("//")[1].split(":")[0]
    await context.add_cookies(
        [
            {
                "name": COOKIE,
                "value": expired,
                "domain": host,
                "path": UI,
                "httpOnly": True,
                "sameSite": "Strict",
            }
        ]
    )


async def test_staff_sign_in_and_check_in_with_one_tap_in_a_real_browser(
    live_market: Market,
    committed_sessionmaker: async_sessionmaker[AsyncSession],
    browser: Browser,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    token = staff_token(live_market)
    context = await browser.new_context(viewport=TABLET, has_touch=True, locale="nb-NO")
    page = await context.new_page()
    await page.goto(f"{live_market.base_url}{UI}/day")
    assert page.url.endswith(f"{UI}/login"), page.url
    await expect(page.locator("html")).to_have_attribute("lang", "nb")
    await page.get_by_label("Lim inn tilgangstokenet ditt").fill(token)
    async with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"{UI}/login")
    ) as login_request:
        await page.get_by_role("button", name="Logg inn", exact=True).click()
    await page.wait_for_url(f"**{UI}/day")
    # The form's own Origin, which the login's Origin check lets through (not `null`).
    sent = await (await login_request.value).all_headers()
    assert sent.get("origin") == live_market.base_url, sent
    await expect(page.get_by_role("heading", name="10:00\N{EN DASH}12:00 · NAV Grünerløkka")).to_be_visible()
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
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.0 and 2.1 A and AA rules on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
    results = await Axe().run(page, options=options)
    assert results.response["testEngine"]["name"] == "axe-core"
    assert results.response["passes"], "axe-core checked nothing"
    return list(results.response["violations"])


def describe(violations: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{v['id']} ({v['impact']}): {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in violations
    )


@pytest.mark.parametrize("lang", ["nb", "en"])
async def test_every_staff_page_passes_axe_core(live_market: Market, browser: Browser, lang: str) -> None:
    """axe-core (wcag2a, wcag2aa, wcag21a, wcag21aa) finds nothing on any page, in either language:
    the login form (also with an error), the day list with its check-in forms, the day list with an
    outcome form open and a notice, the expiry warning before and after, the login form keeping a
    late form, the announcement sheet, an error page, a problem page and the unit chooser."""
    from playwright.async_api import expect

    english = lang == "en"
    found: dict[str, list[dict[str, Any]]] = {}

    async def check(name: str) -> None:
        await expect(page.locator("html")).to_have_attribute("lang", lang)
        found[name] = await axe_violations(page)

    context = await browser.new_context(viewport=TABLET, has_touch=True)
    page = await context.new_page()
    await page.clock.install()
    base = f"{live_market.base_url}{UI}"
    await page.goto(f"{base}/login?lang={lang}")
    await check("login")
    await page.get_by_label("Paste your access token" if english else "Lim inn tilgangstokenet ditt").fill(
        "nonsense"
    )
    await page.get_by_role("button", name="Sign in" if english else "Logg inn", exact=True).click()
    await expect(page.get_by_role("alert")).to_be_visible()
    await check("login with an error")

    await sign_in(page, live_market, staff_token(live_market), lang=lang)
    await expect(page.locator(".who", has_text="Aisha B.")).to_be_visible()
    await check("day list")
    await page.get_by_role("button", name=f"{'Check in' if english else 'Sjekk inn'} Kari N.").click()
    await page.wait_for_url("**notice=checked_in")
    await expect(page.get_by_label("Outcome" if english else "Utfall", exact=True)).to_be_visible()
    await check("day list with an outcome form and a notice")

    # The warning some minutes before the token runs out, and once it has.
    await page.clock.fast_forward((3600 - 240) * 1000)
    warning = page.get_by_role("alert")
    await expect(warning).to_contain_text(
        "Your sign-in expires at" if english else "Innloggingen din utløper kl."
    )
    await check("day list warning before the sign-in expires")
    await page.clock.fast_forward(300 * 1000)
    await expect(warning).to_contain_text(
        "Your sign-in has expired." if english else "Innloggingen din er utløpt."
    )
    await check("day list warning after the sign-in expired")

    await expire_sign_in(context, live_market)
    kari = page.locator(f"#appointment-{live_market.kari}")
    await kari.get_by_label("Outcome" if english else "Utfall", exact=True).select_option("held")
    await kari.get_by_role(
        "button", name=f"{'Save outcome' if english else 'Lagre utfall'} for Kari N."
    ).click()
    await expect(
        page.get_by_role("button", name="Sign in and save" if english else "Logg inn og lagre")
    ).to_be_visible()
    await check("login keeping a form sent after the sign-in expired")
    await page.get_by_label("Paste your access token" if english else "Lim inn tilgangstokenet ditt").fill(
        staff_token(live_market)
    )
    await page.get_by_role("button", name="Sign in and save" if english else "Logg inn og lagre").click()
    await page.wait_for_url("**notice=completed")

    await page.goto(f"{base}/announcements")
    await expect(page.locator("p.text").first).to_be_visible()
    await check("announcement sheet")
    await page.goto(f"{base}/day?date=someday")
    await check("error page")
    await page.goto(f"{base}/day?unit_id={uuid.uuid4()}")
    await check("problem page (unit not found)")
    await context.close()

    chooser = await browser.new_context(viewport=TABLET)
    page = await chooser.new_page()
    await sign_in(page, live_market, mint_token(role="admin", subject="admin-1"), lang=lang)
    await expect(page.locator("input[name=unit_id]")).to_be_visible()
    await check("choose a unit")
    await chooser.close()

    for name, violations in found.items():
        print(f"axe-core {lang}: {name}: {len(violations)} violations")
    assert len(found) == 11
    assert not any(found.values()), {name: describe(v) for name, v in found.items() if v}


LAYOUT_PROBLEMS = """
() => {
  const problems = [];
  const width = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > width) {
    problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} > ${width}`);
  }
  const controls = document.querySelectorAll(
    "main button, main a.button, main input:not([type=hidden]), main select, main textarea, header a, header button"
  );
  for (const el of controls) {
    const box = el.getBoundingClientRect();
    const name = `${el.tagName.toLowerCase()} "${(el.textContent || el.name || "").trim().slice(0, 40)}"`;
    if (box.width === 0 || box.height === 0) { continue; }
    if (box.left < -0.5 || box.right > width + 0.5) {
      problems.push(`${name} sticks out: ${Math.round(box.left)}..${Math.round(box.right)} of ${width}`);
    }
    if (el.scrollWidth > el.clientWidth + 1 && el.tagName !== "SELECT" && el.tagName !== "INPUT") {
      problems.push(`${name} cuts its own text: ${el.scrollWidth} > ${el.clientWidth}`);
    }
    // Cut by an ancestor that clips (overflow other than visible), even by a pixel.
    for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
      if (getComputedStyle(up).overflow === "visible") { continue; }
      const clip = up.getBoundingClientRect();
      if (box.left < clip.left - 0.5 || box.right > clip.right + 0.5
          || box.top < clip.top - 0.5 || box.bottom > clip.bottom + 0.5) {
        problems.push(`${name} is cut by ${up.tagName.toLowerCase()}.${up.className}`);
      }
    }
    // Covered by something else: the middle of the control is not the control.
    el.scrollIntoView({block: "center", inline: "center"});
    const now = el.getBoundingClientRect();
    const hit = document.elementFromPoint(now.left + now.width / 2, now.top + now.height / 2);
    if (!hit || !(hit === el || el.contains(hit) || (hit.tagName === "LABEL" && hit.contains(el)))) {
      problems.push(`${name} is covered or clipped (${hit ? hit.tagName : "nothing"} at its middle)`);
    }
  }
  return problems;
}
"""


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS `rgb(...)` colours."""

    def luminance(css: str) -> float:
        channels = [int(part) / 255 for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
        linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


async def test_the_pages_reflow_at_320_px_and_keep_every_control_at_200_percent_text(
    live_market: Market, browser: Browser, tmp_path: Path
) -> None:
    """WCAG 1.4.10 at 320 CSS pixels, 1.4.4 with the browser's text size at 200 % on a 768 px
    tablet (the "Save outcome" button was cut off there), 1.4.11 field borders and 2.4.7 focus.
    Each page's screenshot is left in the test's temporary folder."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport=PORTRAIT, has_touch=True)
    page = await context.new_page()
    base = f"{live_market.base_url}{UI}"
    await sign_in(page, live_market, staff_token(live_market))
    await page.get_by_role("button", name="Sjekk inn Kari N.").click()
    await page.wait_for_url("**notice=checked_in")
    day = page.url
    pages = {
        "day list": day,
        "announcement sheet": f"{base}/announcements",
        "error page": f"{base}/day?date=someday",
    }

    # The browser's own text size setting, as a user with low vision sets it: 16 px -> 32 px.
    cdp = await context.new_cdp_session(page)
    await cdp.send("Page.setFontSizes", {"fontSizes": {"standard": 32, "fixed": 26}})
    problems: dict[str, list[str]] = {}
    for name, url in pages.items():
        await page.goto(url)
        assert await page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 36
        problems[f"{name} at 768 px, 200 %"] = await page.evaluate(LAYOUT_PROBLEMS)
        await page.screenshot(path=tmp_path / f"{name.replace(' ', '-')}-768px-200.png", full_page=True)
    await page.goto(day)
    save = page.get_by_role("button", name="Lagre utfall for Kari N.")
    await expect(save).to_be_visible()
    assert await save.evaluate("el => el.scrollWidth <= el.clientWidth"), "the button's text is cut"

    await cdp.send("Page.setFontSizes", {"fontSizes": {"standard": 16, "fixed": 13}})
    await page.set_viewport_size(NARROW)
    for name, url in pages.items():
        await page.goto(url)
        problems[f"{name} at 320 px"] = await page.evaluate(LAYOUT_PROBLEMS)
        await page.screenshot(path=tmp_path / f"{name.replace(' ', '-')}-320px.png", full_page=True)
    await context.close()

    signed_out = await browser.new_context(viewport=NARROW)
    page = await signed_out.new_page()
    await page.goto(f"{base}/login")
    problems["login at 320 px"] = await page.evaluate(LAYOUT_PROBLEMS)
    await signed_out.close()
    assert not any(problems.values()), {name: p for name, p in problems.items() if p}

    # Field borders against the card they sit on (1.4.11), and a visible focus ring (2.4.7).
    context = await browser.new_context(viewport=TABLET)
    page = await context.new_page()
    await sign_in(page, live_market, staff_token(live_market))
    minutes = page.locator("input[name=minutes_late]").first
    border, ground = await minutes.evaluate(
        "el => [getComputedStyle(el).borderTopColor, getComputedStyle(el.closest('.card')).backgroundColor]"
    )
    assert contrast(border, ground) >= 3, (border, ground)
    await page.keyboard.press("Tab")
    for _ in range(30):
        if await page.evaluate("document.activeElement.tagName") == "BUTTON":
            break
        await page.keyboard.press("Tab")
    style = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert style[0] == "solid", style
    assert float(style[1].removesuffix("px")) >= 2, style
    await context.close()


async def test_the_page_warns_before_the_sign_in_expires_and_a_late_form_is_saved_after_signing_in(
    live_market: Market, committed_sessionmaker: async_sessionmaker[AsyncSession], browser: Browser
) -> None:
    """WCAG 2.2.1: a warning with a way to sign in again before the token runs out, and a check-in
    sent after it did is kept through the login form and saved, not lost."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport=TABLET, has_touch=True)
    page = await context.new_page()
    await page.clock.install()
    await sign_in(page, live_market, staff_token(live_market, ttl_seconds=900))
    warning = page.locator("#expiry")
    await expect(warning).to_be_hidden()
    await page.clock.fast_forward((900 - 290) * 1000)
    await expect(warning).to_be_visible()
    await expect(warning).to_have_attribute("role", "alert")
    await expect(warning).to_contain_text("Innloggingen din utløper kl.")

    # Signing in again from the warning comes back to the same day list.
    await page.goto(f"{live_market.base_url}{UI}/day?date={datetime.now(LOCAL_TZ).date().isoformat()}")
    day = page.url
    await page.clock.fast_forward(900 * 1000)
    await expect(warning).to_contain_text("Innloggingen din er utløpt.")
    await warning.get_by_role("link", name="Logg inn på nytt").click()
    await page.get_by_label("Lim inn tilgangstokenet ditt").fill(staff_token(live_market))
    await page.get_by_role("button", name="Logg inn", exact=True).click()
    await page.wait_for_url(day)
    await expect(warning).to_be_hidden()

    # The token runs out while the form is filled in: what was typed is saved after signing in.
    await expire_sign_in(context, live_market)
    kari = page.locator(f"#appointment-{live_market.kari}")
    await kari.get_by_label("Min. for sent").fill("4")
    await kari.get_by_role("button", name="Sjekk inn Kari N.").click()
    await expect(page.get_by_role("alert")).to_contain_text("Ingenting er lagret ennå")
    await expect(page.get_by_role("listitem")).to_have_text("Oppmøte for Kari N., 4 min for sent")
    async with committed_sessionmaker() as session:
        state = (
            await session.execute(
                select(MarketAppointment.state).where(MarketAppointment.id == live_market.kari)
            )
        ).scalar_one()
    assert state is AppointmentState.SCHEDULED
    await page.get_by_label("Lim inn tilgangstokenet ditt").fill(staff_token(live_market))
    await page.get_by_role("button", name="Logg inn og lagre").click()
    await page.wait_for_url("**notice=checked_in")
    await expect(page.get_by_role("status")).to_have_text("Oppmøte registrert.")
    await expect(kari).to_have_attribute("data-state", "checked_in")
    await context.close()
