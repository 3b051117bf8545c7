"""The service market pages: sign-in cookie, CSRF and Origin checks (the login form's too),
check-in and outcome by form, stale forms, scope, what a page never shows, the language (bokmål by
default, English on request) and forms that arrive after the sign-in expired."""

from __future__ import annotations

import re
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from case_api.audit.models import AccessLogEntry, TimelineEntry
from case_api.market.sessions import LOCAL_TZ
from case_api.market.texts import TEXTS
from case_api.market.web import COOKIE, LANG_COOKIE
from shared.auth import mint_token
from tests.case_api.conftest import Directory, identity_number, open_case
from tests.case_api.market.helpers import BASE, book, market_session, move, provider

UI = "/market/ui"
SAME_ORIGIN = "http://testserver"  # the test client's base URL
LOGIN_COOKIE = "tilbake_market_ui_login"  # the pre-sign-in id the login form's token is bound to


@dataclass(frozen=True)
class Seeded:
    unit: uuid.UUID
    case: dict[str, Any]
    appointment: dict[str, Any]
    session: dict[str, Any]
    identity_number: str
    person_id: str


def today_at(hour: int) -> datetime:
    return datetime.combine(datetime.now(LOCAL_TZ).date(), time(hour), tzinfo=LOCAL_TZ)


@pytest.fixture
async def seeded(case_client: httpx.AsyncClient, directory: Directory) -> Seeded:
    h = directory.coordinator_east
    nav = await provider(case_client, h, directory.nav_grunerlokka, name="NAV Grünerløkka")
    slot = await market_session(
        case_client,
        h,
        unit=directory.unit_oslo,
        provider_id=nav["id"],
        starts_at=today_at(10),
        location_note="Rom 2",
        announcement="NAV svarer på spørsmål om arbeid og ytelser.",
        domains=["debt"],
    )
    number = identity_number()
    person = (
        await case_client.post(
            "/api/v1/persons",
            json={"identity_number": number, "given_name": "Kari", "family_name": "Nordmann"},
            headers=h,
        )
    ).json()
    case = await open_case(case_client, h, unit=directory.unit_oslo, person_id=person["id"])
    booked = await book(case_client, h, slot["id"], case["id"], escort_officers=2, high_security=True)
    assert booked.status_code == 201, booked.text
    return Seeded(directory.unit_oslo, case, booked.json(), slot, number, person["id"])


async def login_csrf(client: httpx.AsyncClient) -> str:
    """The login form's CSRF token ("" when it has none); the GET also sets the pre-sign-in
    cookie it is bound to."""
    form = await client.get(f"{UI}/login")
    assert form.status_code == 200, form.text
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    return found.group(1) if found else ""


async def post_login(
    client: httpx.AsyncClient, token: str, *, headers: dict[str, str] | None = None
) -> httpx.Response:
    """The browser's way: load the form, then send it back with its CSRF token."""
    csrf = await login_csrf(client)
    return await client.post(f"{UI}/login", data={"token": token, "csrf": csrf}, headers=headers)


async def sign_in(client: httpx.AsyncClient, role: str = "service_market", *, org: uuid.UUID | None) -> str:
    token = mint_token(role=role, organization_id=str(org) if org else None)
    response = await post_login(client, token, headers={"Origin": SAME_ORIGIN})
    assert response.status_code == 303, response.text
    return token


async def day_page(client: httpx.AsyncClient, **params: str) -> str:
    response = await client.get(f"{UI}/day", params=params)
    assert response.status_code == 200, response.text
    return response.text


def form_fields(html: str, appointment_id: str) -> dict[str, str]:
    """The hidden fields of the appointment's form on the page."""
    block = html[html.index(f'id="appointment-{appointment_id}"') :]
    csrf = re.search(r'name="csrf" value="([^"]+)"', block)
    version = re.search(r'name="version" value="(\d+)"', block)
    assert csrf, "the appointment has no form"
    assert version, "the appointment has no form"
    return {"csrf": csrf.group(1), "version": version.group(1)}


async def appointment_state(client: httpx.AsyncClient, directory: Directory, appointment_id: str) -> Any:
    response = await client.get(f"{BASE}/appointments/{appointment_id}", headers=directory.coordinator_east)
    return response.json()


async def test_the_pages_need_a_sign_in_and_the_login_sets_a_protected_cookie(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    for path, back in (("/day", ""), ("/announcements", "?next=%2Fmarket%2Fui%2Fannouncements")):
        response = await case_client.get(f"{UI}{path}")
        assert response.status_code == 303
        assert response.headers["location"] == f"{UI}/login{back}"
    form = await case_client.get(f"{UI}/login")
    assert form.status_code == 200
    assert 'name="token"' in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]

    bad = await post_login(case_client, "not-a-token")
    assert bad.status_code == 401
    assert "Tokenet ble ikke godtatt:" in bad.text
    assert '<span lang="en">Malformed token</span>' in bad.text  # the verifier's English, marked
    assert COOKIE not in case_client.cookies

    token = mint_token(role="service_market", organization_id=str(seeded.unit))
    response = await post_login(case_client, f"Bearer {token}")
    assert response.status_code == 303
    assert response.headers["location"] == f"{UI}/day"
    cookies = response.headers.get_list("set-cookie")
    assert any(c.startswith(f'{LOGIN_COOKIE}="";') for c in cookies), "the pre-sign-in id is dropped"
    cookie = next(c for c in cookies if c.startswith(f"{COOKIE}="))
    assert cookie.startswith(f"{COOKIE}={token};")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/market/ui" in cookie
    assert "Secure" not in cookie  # plain http in the test; https gets Secure

    html = await day_page(case_client)  # the caller's unit and today by default
    assert "Kari N." in html
    assert "NAV Grünerløkka" in html
    assert "Oslo fengsel" in html
    assert "Sjekk inn" in html
    assert "2 betjenter, heis" not in html
    assert "2 betjenter, høy sikkerhet" in html


async def test_an_expired_token_goes_back_to_the_login_form(
    case_client: httpx.AsyncClient, seeded: Seeded
) -> None:
    expired = mint_token(role="service_market", organization_id=str(seeded.unit), ttl_seconds=-120)
    response = await case_client.get(f"{UI}/day", headers={"Cookie": f"{COOKIE}={expired}"})
    assert response.status_code == 303
    assert response.headers["location"] == f"{UI}/login?expired=1"
    assert f'{COOKIE}=""' in response.headers["set-cookie"]
    assert "Innloggingen din er utløpt" in (await case_client.get(response.headers["location"])).text


async def test_a_role_without_the_service_market_cannot_sign_in(
    case_client: httpx.AsyncClient, directory: Directory
) -> None:
    token = mint_token(role="nav", organization_id=str(directory.nav_grunerlokka))
    response = await post_login(case_client, token)
    assert response.status_code == 403
    assert COOKIE not in case_client.cookies


async def test_the_login_form_carries_a_token_bound_to_a_pre_sign_in_cookie(
    case_client: httpx.AsyncClient,
) -> None:
    form = await case_client.get(f"{UI}/login")
    assert re.search(r'<input type="hidden" name="csrf" value="[0-9a-f]{64}">', form.text)
    cookie = form.headers["set-cookie"]
    assert cookie.startswith(f"{LOGIN_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert f"Path={UI}/login" in cookie
    assert "Logg ut" not in form.text
    # The same browser keeps its id, so two open login tabs both work.
    assert await login_csrf(case_client) == await login_csrf(case_client)
    assert form.headers["referrer-policy"] == "same-origin"


async def test_a_login_from_another_origin_is_refused(case_client: httpx.AsyncClient, seeded: Seeded) -> None:
    """Login CSRF: another site must not sign a staff member in to a token of its choosing."""
    attacker = mint_token(role="service_market", subject="attacker", organization_id=str(seeded.unit))
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},  # a sandboxed frame, or a page with no-referrer
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "http://testserver:8443"},
        {"Referer": "https://evil.example/market/ui/login"},
    ):
        response = await post_login(case_client, attacker, headers=headers)
        assert response.status_code == 403, (headers, response.text)
        assert "sendt fra et annet nettsted" in response.text
        assert COOKIE not in case_client.cookies

    fine = await post_login(case_client, attacker, headers={"Referer": f"{SAME_ORIGIN}{UI}/login"})
    assert fine.status_code == 303


async def test_a_login_without_its_csrf_token_is_refused(
    case_client: httpx.AsyncClient, seeded: Seeded
) -> None:
    token = mint_token(role="service_market", organization_id=str(seeded.unit))
    csrf = await login_csrf(case_client)
    url = f"{UI}/login"

    missing = await case_client.post(url, data={"token": token}, headers={"Origin": SAME_ORIGIN})
    wrong = await case_client.post(url, data={"token": token, "csrf": "0" * 64})
    assert [missing.status_code, wrong.status_code] == [403, 403]
    assert "Innloggingsskjemaet var utløpt" in missing.text
    assert COOKIE not in case_client.cookies

    # The token belongs to the browser's pre-sign-in cookie: without that cookie, or with another
    # browser's (an attacker's own id and token), it does not count.
    pre_session = case_client.cookies[LOGIN_COOKIE]
    case_client.cookies.clear()
    no_cookie = await case_client.post(url, data={"token": token, "csrf": csrf})
    assert no_cookie.status_code == 403
    other_token = await login_csrf(case_client)  # a fresh id for this "browser"
    assert case_client.cookies[LOGIN_COOKIE] != pre_session
    replayed = await case_client.post(url, data={"token": token, "csrf": csrf})
    assert replayed.status_code == 403
    assert COOKIE not in case_client.cookies

    ok = await case_client.post(url, data={"token": token, "csrf": other_token})
    assert ok.status_code == 303, ok.text


async def test_forms_sent_from_another_origin_are_refused(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    await sign_in(case_client, org=seeded.unit)
    appointment_id = seeded.appointment["id"]
    fields = form_fields(await day_page(case_client), appointment_id)
    foreign = {"Origin": "https://evil.example"}
    response = await case_client.post(
        f"{UI}/appointments/{appointment_id}/check-in", data=fields, headers=foreign
    )
    assert response.status_code == 403
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "scheduled"
    logout = await case_client.post(f"{UI}/logout", data={"csrf": fields["csrf"]}, headers=foreign)
    assert logout.status_code == 403
    assert COOKIE in case_client.cookies


async def test_check_in_and_outcome_by_form_change_the_appointment(
    case_client: httpx.AsyncClient,
    directory: Directory,
    seeded: Seeded,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await sign_in(case_client, org=seeded.unit)
    appointment_id = seeded.appointment["id"]
    assert seeded.appointment["state"] == "scheduled"
    fields = form_fields(await day_page(case_client), appointment_id)

    response = await case_client.post(
        f"{UI}/appointments/{appointment_id}/check-in", data={**fields, "minutes_late": "5"}
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("notice=checked_in")
    stored = await appointment_state(case_client, directory, appointment_id)
    assert stored["state"] == "checked_in"
    assert stored["checkin"]["minutes_late"] == 5
    async with sessionmaker() as session:
        actions = (
            await session.execute(
                select(TimelineEntry.action)
                .where(TimelineEntry.entity_id == appointment_id)
                .order_by(TimelineEntry.at, TimelineEntry.id)
            )
        ).scalars()
        # A scheduled appointment is confirmed for escort on the way, as its own recorded step.
        assert list(actions)[-2:] == ["market.appointment_escort_confirmed", "market.appointment_checked_in"]

    page = await case_client.get(response.headers["location"])
    assert "Oppmøte registrert." in page.text
    fields = form_fields(page.text, appointment_id)
    assert 'name="outcome_code"' in page.text
    response = await case_client.post(
        f"{UI}/appointments/{appointment_id}/complete",
        data={**fields, "outcome_code": "partly_held", "follow_up_needed": "on"},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"].endswith("notice=completed")
    stored = await appointment_state(case_client, directory, appointment_id)
    assert stored["state"] == "completed"
    assert stored["checkin"]["outcome_code"] == "partly_held"
    assert stored["checkin"]["follow_up_needed"] is True
    assert stored["checkin"]["domains_touched"] == []
    assert stored["checkin"]["referral_made"] is False


async def test_an_outcome_form_without_an_outcome_saves_nothing(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    appointment_id = seeded.appointment["id"]
    await move(
        case_client, directory.coordinator_east, appointment_id, "transitions", {"to": "escort_confirmed"}
    )
    await move(case_client, directory.coordinator_east, appointment_id, "check-in", {})
    await sign_in(case_client, org=seeded.unit)
    fields = form_fields(await day_page(case_client), appointment_id)
    response = await case_client.post(
        f"{UI}/appointments/{appointment_id}/complete", data={**fields, "outcome_code": "chatted"}
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("notice=invalid")
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "checked_in"


async def test_forms_without_the_right_csrf_token_are_refused(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    await sign_in(case_client, org=seeded.unit)
    appointment_id = seeded.appointment["id"]
    fields = form_fields(await day_page(case_client), appointment_id)
    url = f"{UI}/appointments/{appointment_id}/check-in"

    missing = await case_client.post(url, data={"version": fields["version"]})
    wrong = await case_client.post(url, data={**fields, "csrf": "0" * 64})
    as_json = await case_client.post(url, json=fields)
    assert [r.status_code for r in (missing, wrong, as_json)] == [403, 403, 403]
    assert "mangler sikkerhetsnøkkelen" in missing.text

    # A token from another sign-in (another jti) does not carry over.
    await sign_in(case_client, org=seeded.unit)
    stolen = await case_client.post(url, data=fields)
    assert stolen.status_code == 403
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "scheduled"

    # A GET never changes anything.
    assert (await case_client.get(url)).status_code == 405


async def test_a_stale_form_says_the_appointment_changed_meanwhile(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    await sign_in(case_client, org=seeded.unit)
    appointment_id = seeded.appointment["id"]
    fields = form_fields(await day_page(case_client), appointment_id)
    # Someone else moves it after the page was loaded.
    moved = await move(
        case_client, directory.coordinator_east, appointment_id, "transitions", {"to": "moved_to_video"}
    )
    assert moved.status_code == 200, moved.text

    response = await case_client.post(f"{UI}/appointments/{appointment_id}/check-in", data=fields)
    assert response.status_code == 303
    assert response.headers["location"].endswith("notice=stale")
    page = await case_client.get(response.headers["location"])
    assert page.status_code == 200
    assert "endret denne avtalen i mellomtiden" in page.text
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "moved_to_video"

    # The fresh page offers the check-in again (a video talk can be checked in), at the new version.
    fresh = form_fields(page.text, appointment_id)
    assert fresh["version"] != fields["version"]
    again = await case_client.post(f"{UI}/appointments/{appointment_id}/check-in", data=fresh)
    assert again.headers["location"].endswith("notice=checked_in")


async def test_service_market_staff_of_another_unit_see_nothing_here(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    await sign_in(case_client, org=seeded.unit)
    fields = form_fields(await day_page(case_client), seeded.appointment["id"])
    await sign_in(case_client, org=directory.unit_halden)
    own = await day_page(case_client)
    assert "Kari N." not in own
    assert "Halden fengsel" in own

    other = await case_client.get(f"{UI}/day", params={"unit_id": str(seeded.unit)})
    assert other.status_code == 404
    assert "Kari N." not in other.text
    sheet = await case_client.get(f"{UI}/announcements", params={"unit_id": str(seeded.unit)})
    assert sheet.status_code == 404

    # Even with a valid form of its own, a check-in on another unit's appointment is 404.
    halden_page = await case_client.get(f"{UI}/day")
    csrf = re.search(r'name="csrf" value="([^"]+)"', halden_page.text)
    assert csrf is not None
    response = await case_client.post(
        f"{UI}/appointments/{seeded.appointment['id']}/check-in",
        data={"csrf": csrf.group(1), "version": fields["version"]},
    )
    assert response.status_code == 404
    assert (await appointment_state(case_client, directory, seeded.appointment["id"]))["state"] == "scheduled"


async def test_an_auditor_reads_the_day_list_without_forms(
    case_client: httpx.AsyncClient, seeded: Seeded
) -> None:
    await sign_in(case_client, "auditor", org=None)
    chooser = await day_page(case_client)
    assert 'name="unit_id"' in chooser  # no unit of its own: asks which
    html = await day_page(case_client, unit_id=str(seeded.unit))
    assert "Kari N." in html
    assert "/check-in" not in html


async def test_pages_show_no_domains_or_identity_data_and_log_the_read(
    case_client: httpx.AsyncClient,
    directory: Directory,
    seeded: Seeded,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await sign_in(case_client, org=seeded.unit)
    html = await day_page(case_client, date=datetime.now(LOCAL_TZ).date().isoformat())
    sheet = (await case_client.get(f"{UI}/announcements", params={"unit_id": str(seeded.unit)})).text
    for page in (html, sheet):
        assert seeded.identity_number not in page
        assert "Nordmann" not in page
        assert seeded.case["id"] not in page
        assert seeded.person_id not in page
        assert "debt" not in page.lower()
    assert "Kari N." in html
    async with sessionmaker() as session:
        logged = (
            (
                await session.execute(
                    select(AccessLogEntry).where(
                        AccessLogEntry.case_id == uuid.UUID(seeded.case["id"]),
                        AccessLogEntry.what == "market.day_list",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [(e.actor_role, e.actor_organization_id) for e in logged] == [("service_market", seeded.unit)]


async def test_the_announcement_sheet_is_printable_and_leaves_out_cancelled_sessions(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    h = directory.coordinator_east
    housing = await provider(case_client, h, directory.ngo, name="Husbanken drop-in", kind="housing")
    later = await market_session(
        case_client,
        h,
        unit=seeded.unit,
        provider_id=housing["id"],
        starts_at=today_at(13) + timedelta(days=2),
        announcement="Spørsmål om bolig etter løslatelse.",
    )
    gone = await market_session(
        case_client, h, unit=seeded.unit, provider_id=housing["id"], starts_at=today_at(9) + timedelta(days=3)
    )
    cancelled = await case_client.post(
        f"{BASE}/sessions/{gone['id']}/cancel",
        json={"cause": "provider", "reason": "Ill"},
        headers={**h, "If-Match": gone["etag"]},
    )
    assert cancelled.status_code == 200, cancelled.text
    await sign_in(case_client, org=seeded.unit)

    response = await case_client.get(f"{UI}/announcements")
    assert response.status_code == 200
    html = response.text
    assert "@media print" in html
    assert "NAV Grünerløkka" in html
    assert "NAV svarer på spørsmål om arbeid og ytelser." in html
    assert "Rom 2" in html
    assert "Spørsmål om bolig etter løslatelse." in html
    assert html.index("NAV Grünerløkka") < html.index("Husbanken drop-in")
    assert html.count("Husbanken drop-in") == 1  # the cancelled one is not announced
    assert "Kari N." not in html
    assert later["id"] not in html

    narrow = await case_client.get(
        f"{UI}/announcements", params={"from": datetime.now(LOCAL_TZ).date().isoformat(), "to": "2000-01-01"}
    )
    assert narrow.status_code == 400


@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31"])
async def test_a_day_at_the_ends_of_the_calendar_is_refused_not_a_500(
    case_client: httpx.AsyncClient, directory: Directory, day: str
) -> None:
    """Local-day arithmetic at year 1 or 9999 overflowed (500 on the day list, the statistics and
    the staff page): days outside 1900..2999 are a 422, and a 400 page."""
    headers = directory.admin
    unit = str(directory.unit_oslo)
    day_list = await case_client.get(
        f"{BASE}/day-list", params={"unit_id": unit, "date": day}, headers=headers
    )
    stats = await case_client.get(
        f"{BASE}/statistics", params={"unit_id": unit, "from": day, "to": day}, headers=headers
    )
    assert (day_list.status_code, stats.status_code) == (422, 422), (day_list.text, stats.text)
    await sign_in(case_client, "admin", org=None)
    page = await case_client.get(f"{UI}/day", params={"unit_id": unit, "date": day})
    assert page.status_code == 400, page.text


def test_every_text_is_there_in_both_languages_with_the_same_placeholders() -> None:
    fields = string.Formatter()
    for key, (nb, en) in TEXTS.items():
        assert nb, key
        assert en, key
        assert {f for _, f, _, _ in fields.parse(nb) if f} == {f for _, f, _, _ in fields.parse(en) if f}, key


async def test_the_pages_are_in_bokmal_and_in_english_on_request(
    case_client: httpx.AsyncClient, seeded: Seeded
) -> None:
    login = (await case_client.get(f"{UI}/login")).text
    assert '<html lang="nb">' in login
    assert "Logg inn på servicetorget" in login
    assert '<a href="/market/ui/login?lang=en" lang="en" hreflang="en">English</a>' in login
    await sign_in(case_client, org=seeded.unit)

    html = await day_page(case_client)
    assert '<html lang="nb">' in html
    assert "Dagsliste" in html
    assert "Logg ut" in html
    assert "Sign out" not in html
    assert "(<span>Rom 2</span>)" in html  # staff's own text, in the page's language

    english = await case_client.get(f"{UI}/day", params={"lang": "en"})
    assert english.status_code == 200
    assert '<html lang="en">' in english.text
    assert "Check in" in english.text
    assert "2 officers, high security" in english.text
    assert '(<span lang="nb">Rom 2</span>)' in english.text  # marked as bokmål on the English page
    assert ">Norsk</a>" in english.text
    cookie = english.headers["set-cookie"]
    assert cookie.startswith(f"{LANG_COOKIE}=en;")
    assert "Path=/market/ui" in cookie

    # The cookie keeps the choice on the next pages, redirects included, until ?lang=nb.
    sheet = (await case_client.get(f"{UI}/announcements")).text
    assert '<html lang="en">' in sheet
    assert "Service market at Oslo fengsel" in sheet
    assert '<p class="text" lang="nb">NAV svarer på spørsmål om arbeid og ytelser.</p>' in sheet
    assert "Sign out" in (await case_client.get(f"{UI}/day", params={"lang": "de"})).text
    bad = await case_client.get(f"{UI}/day", params={"date": "someday"})
    assert bad.status_code == 400
    assert "Give the unit as an id" in bad.text
    assert "Logg ut" in (await case_client.get(f"{UI}/day", params={"lang": "nb"})).text
    assert "Logg ut" in await day_page(case_client)


async def test_the_page_knows_when_the_sign_in_expires_and_how_to_sign_in_again(
    case_client: httpx.AsyncClient, seeded: Seeded
) -> None:
    token = mint_token(role="service_market", organization_id=str(seeded.unit), ttl_seconds=600)
    assert (await post_login(case_client, token)).status_code == 303
    html = await day_page(case_client, unit_id=str(seeded.unit))
    box = re.search(r'<div id="expiry"[^>]*data-seconds="(\d+)"\s+data-warn="(\d+)" hidden>', html)
    assert box, "the page has no expiry warning"
    assert 590 <= int(box.group(1)) <= 600
    assert box.group(2) == "300"
    back = f"{UI}/login?next=%2Fmarket%2Fui%2Fday%3Funit_id%3D{seeded.unit}"
    assert f'href="{back}">Logg inn på nytt</a>' in html
    assert "Innloggingen din utløper kl." in html

    # Signing in again goes back to that page.
    form = await case_client.get(back)
    assert f'name="next" value="/market/ui/day?unit_id={seeded.unit}"' in form.text
    again = await post_login_to(case_client, back, token)
    assert again.status_code == 303
    assert again.headers["location"] == f"{UI}/day?unit_id={seeded.unit}"


async def post_login_to(client: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    """The login form at ``url`` sent back as it came, with ``token``."""
    form = (await client.get(url)).text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))
    return await client.post(f"{UI}/login", data={**fields, "token": token})


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/market/ui/day",
        "//evil.example/market/ui/day",
        "/\\evil.example/market/ui/day",
        "/market/ui/../../metrics",
        "/elsewhere",
        "/market/ui/login",
    ],
)
async def test_sign_in_goes_back_only_to_a_page_of_the_staff_pages(
    case_client: httpx.AsyncClient, seeded: Seeded, next_url: str
) -> None:
    token = mint_token(role="service_market", organization_id=str(seeded.unit))
    csrf = await login_csrf(case_client)
    response = await case_client.post(f"{UI}/login", data={"token": token, "csrf": csrf, "next": next_url})
    assert response.status_code == 303
    assert response.headers["location"] == f"{UI}/day"


async def test_a_form_sent_after_the_sign_in_expired_is_kept_and_saved_after_signing_in(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    """WCAG 2.2.1: running out of time loses nothing. The check-in and the outcome that arrive with
    an expired token wait in the login form, through a failed attempt too, and are saved after it."""
    appointment_id = seeded.appointment["id"]
    await sign_in(case_client, org=seeded.unit)
    fields = form_fields(await day_page(case_client), appointment_id)
    expired = mint_token(role="service_market", organization_id=str(seeded.unit), ttl_seconds=-120)
    case_client.cookies.set(COOKIE, expired, domain="testserver.local", path=UI)

    url = f"{UI}/appointments/{appointment_id}/check-in"
    kept = await case_client.post(url, data={**fields, "name": "Kari N.", "minutes_late": "7"})
    assert kept.status_code == 401
    assert "Innloggingen din utløp før skjemaet ble lagret" in kept.text
    assert "<li>Oppmøte for Kari N., 7 min for sent</li>" in kept.text
    assert '<input type="hidden" name="pending_minutes_late" value="7">' in kept.text
    assert "Logg inn og lagre" in kept.text
    assert fields["csrf"] not in kept.text  # the old form's token is not carried on
    assert f'{COOKIE}=""' in kept.headers["set-cookie"]
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "scheduled"

    pending = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', kept.text))
    wrong = await case_client.post(f"{UI}/login", data={**pending, "token": "not-a-token"})
    assert wrong.status_code == 401
    assert '<input type="hidden" name="pending_minutes_late" value="7">' in wrong.text

    token = mint_token(role="service_market", organization_id=str(seeded.unit))
    saved = await case_client.post(f"{UI}/login", data={**pending, "token": token})
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].endswith("notice=checked_in")
    assert any(c.startswith(f"{COOKIE}={token};") for c in saved.headers.get_list("set-cookie"))
    stored = await appointment_state(case_client, directory, appointment_id)
    assert stored["state"] == "checked_in"
    assert stored["checkin"]["minutes_late"] == 7

    # The outcome too, in English this time.
    fields = form_fields(await day_page(case_client), appointment_id)
    case_client.cookies.set(COOKIE, expired, domain="testserver.local", path=UI)
    kept = await case_client.post(
        f"{UI}/appointments/{appointment_id}/complete?lang=en",
        data={**fields, "name": "Kari N.", "outcome_code": "partly_held", "follow_up_needed": "on"},
    )
    assert kept.status_code == 401
    assert "<li>Outcome for Kari N.: Partly held, follow-up needed</li>" in kept.text
    pending = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', kept.text))
    saved = await case_client.post(f"{UI}/login", data={**pending, "token": token})
    assert saved.headers["location"].endswith("notice=completed")
    stored = await appointment_state(case_client, directory, appointment_id)
    assert stored["state"] == "completed"
    assert stored["checkin"]["outcome_code"] == "partly_held"
    assert stored["checkin"]["follow_up_needed"] is True


async def test_a_kept_form_is_checked_like_any_other_after_signing_in(
    case_client: httpx.AsyncClient, directory: Directory, seeded: Seeded
) -> None:
    """Signing in again does not skip the version check, nor the new sign-in's own rights."""
    appointment_id = seeded.appointment["id"]
    await sign_in(case_client, org=seeded.unit)
    fields = form_fields(await day_page(case_client), appointment_id)
    case_client.cookies.delete(COOKIE, path=UI)  # signed out in another tab: kept the same way
    kept = await case_client.post(f"{UI}/appointments/{appointment_id}/check-in", data=fields)
    assert kept.status_code == 401
    pending = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', kept.text))

    auditor = mint_token(role="auditor")
    refused = await case_client.post(f"{UI}/login", data={**pending, "token": auditor})
    assert refused.status_code == 403
    assert "Rollen «auditor» kan ikke registrere oppmøte eller utfall." in refused.text
    assert COOKIE not in case_client.cookies
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "scheduled"

    moved = await move(
        case_client, directory.coordinator_east, appointment_id, "transitions", {"to": "moved_to_video"}
    )
    assert moved.status_code == 200, moved.text
    token = mint_token(role="service_market", organization_id=str(seeded.unit))
    pending = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', refused.text))
    stale = await case_client.post(f"{UI}/login", data={**pending, "token": token})
    assert stale.headers["location"].endswith("notice=stale")
    assert (await appointment_state(case_client, directory, appointment_id))["state"] == "moved_to_video"
