"""Service market pages for staff: the day list with check-in and outcome, and the announcement sheet.

Server-rendered HTML under ``/market/ui`` (outside ``/api/v1`` and its OpenAPI document). Browsers
do not send bearer headers when they navigate, so ``/market/ui/login`` takes the token once,
verifies it with the app's :class:`~shared.auth.TokenVerifier` and keeps it in an HttpOnly,
SameSite=Strict cookie (Secure over https and in production). Every page verifies the cookie again
(an expired token goes back to the login form) and builds the same
:class:`~case_api.access.Viewer` the API does.

Forms that change something are POSTs with a CSRF token: an HMAC of the token's id under a key
derived from the service's settings, so every replica accepts every other replica's forms. The
login form's token is bound to a pre-sign-in cookie instead, so no other site can sign a browser
in to a token of its choosing. Every POST is refused when its Origin (or Referer) names another
origin. A form carries the appointment's version; a form older than the appointment answers
"changed meanwhile, reload" instead of changing anything (the API's ``If-Match``).

Everything goes through the market's service modules, and the day list through the same
`DayList` the API answers: the same rules, the same names ("Kari N."), the same access log entries.
Domains and identity numbers never reach a page.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from case_api.access import Viewer, get_viewer
from case_api.audit import service as audit
from case_api.market import access, appointments, checkins, providers, sessions
from case_api.market.day_list import day_plan, to_day_list
from case_api.market.errors import IllegalAppointmentTransition
from case_api.market.lifecycle import TRANSITIONS
from case_api.market.models import (
    AppointmentState,
    LocationType,
    MarketAppointment,
    MarketSession,
    OutcomeCode,
    SessionFormat,
)
from case_api.market.schemas import (
    EARLIEST_DAY,
    LATEST_DAY,
    AppointmentTransition,
    CheckIn,
    Completion,
    DayList,
    DayListEntry,
)
from case_api.market.sessions import LOCAL_TZ
from case_api.organizations import service as organizations
from shared.auth import Principal, TokenVerifier
from shared.db import unit_of_work
from shared.errors import ProblemError, Unauthorized

PREFIX = "/market/ui"
DASH = "\N{EN DASH}"
COOKIE = "tilbake_market_ui"
LOGIN_COOKIE = "tilbake_market_ui_login"  # the pre-sign-in id the login form's CSRF token is bound to
_PRE_SESSION = re.compile(r"[A-Za-z0-9_-]{43}")
MAX_FORM_BYTES = 16_384
MAX_SHEET_DAYS = 62
SHEET_PAGES = 10  # at most 10 x 200 sessions on one sheet

router = APIRouter(prefix=PREFIX, include_in_schema=False)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

STATE_LABELS = {
    AppointmentState.REQUESTED: "Requested",
    AppointmentState.SCHEDULED: "Scheduled",
    AppointmentState.ESCORT_CONFIRMED: "Escort confirmed",
    AppointmentState.CHECKED_IN: "Checked in",
    AppointmentState.COMPLETED: "Completed",
    AppointmentState.NO_SHOW: "No show",
    AppointmentState.CANCELLED_BY_PRISON: "Cancelled by the prison",
    AppointmentState.CANCELLED_BY_PROVIDER: "Cancelled by the provider",
    AppointmentState.MOVED_TO_CELL_VISIT: "Moved to a cell visit",
    AppointmentState.MOVED_TO_VIDEO: "Moved to video",
    AppointmentState.RESCHEDULED: "Rescheduled",
}
OUTCOME_LABELS = {
    OutcomeCode.HELD: "Held",
    OutcomeCode.PARTLY_HELD: "Partly held",
    OutcomeCode.NOT_HELD_INMATE_DECLINED: "Not held: inmate declined",
    OutcomeCode.NOT_HELD_PROVIDER_ABSENT: "Not held: provider absent",
    OutcomeCode.NOT_HELD_NO_ESCORT: "Not held: no escort",
}
LOCATION_LABELS = {
    LocationType.SERVICE_MARKET_ROOM: "Service market room",
    LocationType.CELL: "Cell",
    LocationType.VIDEO: "Video",
    LocationType.OTHER: "Other place",
}
FORMAT_LABELS = {
    SessionFormat.ONE_TO_ONE: "One-to-one talks",
    SessionFormat.THEME_EVENING: "Theme evening",
    SessionFormat.PRESENTATION: "Presentation",
    SessionFormat.CELL_VISIT: "Cell visit",
    SessionFormat.VIDEO: "Video",
}
# Fixed texts a redirect may ask the day list to show: the query names one, never the text.
NOTICES = {
    "checked_in": ("ok", "Checked in."),
    "completed": ("ok", "Outcome recorded."),
    "stale": (
        "warn",
        "This appointment was changed meanwhile by someone else, so nothing was saved. "
        "The list below is fresh: check it and try again.",
    ),
    "invalid": ("warn", "The form was not filled in correctly; nothing was saved."),
}
# Straight to checked_in, per the lifecycle; `scheduled` goes through escort_confirmed first.
CHECK_IN_FROM = frozenset(s for s, nexts in TRANSITIONS.items() if AppointmentState.CHECKED_IN in nexts)
VIA_ESCORT = frozenset(
    s
    for s, nexts in TRANSITIONS.items()
    if AppointmentState.ESCORT_CONFIRMED in nexts and AppointmentState.ESCORT_CONFIRMED in CHECK_IN_FROM
)
COMPLETE_FROM = frozenset(s for s, nexts in TRANSITIONS.items() if AppointmentState.COMPLETED in nexts)


# --- rendering ----------------------------------------------------------------------------------


def _render(template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template(template).render(prefix=PREFIX, nonce=nonce, **context)
    return HTMLResponse(html, status_code=status_code, headers=_page_headers(nonce))


def _page_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "Cache-Control": "no-store",
        # same-origin, not no-referrer: nothing still goes to other sites, and the pages' own form
        # POSTs carry their Origin, which no-referrer turns into `null`.
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }


def _error_page(status_code: int, title: str, detail: str | None) -> HTMLResponse:
    return _render("error.html", status_code=status_code, title=title, detail=detail)


def _problem_page(exc: ProblemError) -> HTMLResponse:
    return _error_page(exc.status, exc.title, exc.detail)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _local(moment: datetime) -> datetime:
    return moment.astimezone(LOCAL_TZ)


def _today() -> date:
    return datetime.now(LOCAL_TZ).date()


def _day_url(unit_id: uuid.UUID, day: date, notice: str | None = None) -> str:
    query = {"unit_id": str(unit_id), "date": day.isoformat()}
    if notice:
        query["notice"] = notice
    return f"{PREFIX}/day?{urlencode(query)}"


# --- sign-in and CSRF ---------------------------------------------------------------------------


def _secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https" or getattr(request.app.state.settings, "env", "") == "production"


def _csrf_key(request: Request) -> bytes:
    """A key of the app's own, derived from a secret every replica shares."""
    key: bytes | None = getattr(request.app.state, "market_ui_csrf_key", None)
    if key is None:
        secret = str(request.app.state.settings.identity_hash_key).encode()
        key = hmac.new(secret, b"tilbake/market-ui/csrf/v1", hashlib.sha256).digest()
        request.app.state.market_ui_csrf_key = key
    return key


def csrf_token(request: Request, principal: Principal, token: str) -> str:
    """Bound to the signed-in token: its `jti`, or a hash of the token when it has none."""
    session_id = principal.token_id or hashlib.sha256(token.encode()).hexdigest()
    return hmac.new(_csrf_key(request), f"csrf:{session_id}".encode(), hashlib.sha256).hexdigest()


def _login_csrf(request: Request, pre_session: str) -> str:
    return hmac.new(_csrf_key(request), f"login:{pre_session}".encode(), hashlib.sha256).hexdigest()


def _authority(scheme: str, netloc: str) -> str:
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    return netloc.lower().removesuffix(default)


def _same_origin(request: Request) -> bool:
    """False when the Origin, or without one the Referer, names another origin (`null` included).
    With neither, not a browser's form POST, the CSRF token alone decides (docs/servicetorg.md)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    parts = urlsplit(source)
    # Behind a proxy that ends TLS the app sees http while the browser's origin is https.
    schemes = {"https"} if _secure_cookie(request) else {"http", "https"}
    if parts.scheme not in schemes or not parts.netloc:
        return False
    return _authority(parts.scheme, parts.netloc) == _authority(parts.scheme, request.headers.get("host", ""))


def _cross_site() -> HTMLResponse:
    return _error_page(403, "Forbidden", "The form was sent from another site.")


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    token: str
    csrf: str


async def _signed_in(request: Request) -> SignedIn | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.principal(token)
    except Unauthorized:
        return None
    return SignedIn(principal=principal, token=token, csrf=csrf_token(request, principal, token))


def _to_login(request: Request) -> RedirectResponse:
    expired = COOKIE in request.cookies
    response = _redirect(f"{PREFIX}/login" + ("?expired=1" if expired else ""))
    if expired:
        response.delete_cookie(COOKIE, path=PREFIX, secure=_secure_cookie(request), httponly=True)
    return response


async def _form(request: Request) -> dict[str, str] | None:
    """An urlencoded form body (the first value of each field); None when too big or not a form."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in parsed.items()}


def _csrf_ok(signed_in: SignedIn, form: Mapping[str, str]) -> bool:
    return hmac.compare_digest(form.get("csrf", ""), signed_in.csrf)


@router.get("/")
async def index() -> RedirectResponse:
    return _redirect(f"{PREFIX}/day")


def _login_page(request: Request, *, status_code: int = 200, error: str | None = None) -> HTMLResponse:
    """The login form with a CSRF token bound to the browser's pre-sign-in cookie (set if missing)."""
    pre_session = request.cookies.get(LOGIN_COOKIE, "")
    fresh = not _PRE_SESSION.fullmatch(pre_session)
    if fresh:
        pre_session = secrets.token_urlsafe(32)
    response = _render(
        "login.html", status_code=status_code, error=error, login_csrf=_login_csrf(request, pre_session)
    )
    if fresh:
        response.set_cookie(
            LOGIN_COOKIE,
            pre_session,
            path=f"{PREFIX}/login",
            httponly=True,
            samesite="strict",
            secure=_secure_cookie(request),
        )
    return response


def _login_csrf_ok(request: Request, form: Mapping[str, str]) -> bool:
    pre_session = request.cookies.get(LOGIN_COOKIE, "")
    return bool(_PRE_SESSION.fullmatch(pre_session)) and hmac.compare_digest(
        form.get("csrf", ""), _login_csrf(request, pre_session)
    )


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, expired: str | None = None) -> HTMLResponse:
    error = "Your sign-in has expired. Paste a new token." if expired else None
    return _login_page(request, error=error)


@router.post("/login")
async def login(request: Request) -> Response:
    # Login CSRF: another site must not sign this browser in to a token of its choosing.
    if not _same_origin(request):
        return _login_page(request, status_code=403, error="The sign-in form was sent from another site.")
    form = await _form(request)
    if form is None or not _login_csrf_ok(request, form):
        return _login_page(
            request, status_code=403, error="The sign-in form had expired. Paste your token again."
        )
    token = form.get("token", "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        return _login_page(request, status_code=400, error="Paste your token.")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.principal(token)
    except Unauthorized as exc:
        return _login_page(
            request, status_code=401, error=f"The token was not accepted: {exc.detail or exc.title}."
        )
    if principal.role not in access.MARKET_READERS:
        return _login_page(
            request,
            status_code=403,
            error=f"The role {principal.role.value!r} has no access to the service market.",
        )
    response = _redirect(f"{PREFIX}/day")
    response.delete_cookie(
        LOGIN_COOKIE, path=f"{PREFIX}/login", secure=_secure_cookie(request), httponly=True
    )
    response.set_cookie(
        COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=_secure_cookie(request),
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _cross_site()
    signed_in = await _signed_in(request)
    form = await _form(request)
    if signed_in is not None and (form is None or not _csrf_ok(signed_in, form)):
        return _error_page(403, "Forbidden", "The form is missing its security token.")
    response = _redirect(f"{PREFIX}/login")
    response.delete_cookie(COOKIE, path=PREFIX, secure=_secure_cookie(request), httponly=True)
    return response


# --- the day list -------------------------------------------------------------------------------


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _parse_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if EARLIEST_DAY <= day <= LATEST_DAY else None


def _entry_view(entry: DayListEntry, *, can_write: bool) -> dict[str, Any]:
    state: AppointmentState = entry.state
    escort = []
    if entry.escort_officers:
        escort.append(f"{entry.escort_officers} officer{'s' if entry.escort_officers != 1 else ''}")
    if entry.needs_lift:
        escort.append("lift")
    if entry.high_security:
        escort.append("high security")
    return {
        "id": str(entry.appointment_id),
        "name": entry.person_name,
        "time": f"{_local(entry.starts_at):%H:%M}{DASH}{_local(entry.ends_at):%H:%M}",
        "provider": entry.provider_name,
        "location": LOCATION_LABELS[entry.location_type],
        "location_note": entry.location_note,
        "escort": ", ".join(escort) or "no escort",
        "high_security": entry.high_security,
        "state": state.value,
        "state_label": STATE_LABELS[state],
        "version": entry.version,
        "can_check_in": can_write and (state in CHECK_IN_FROM or state in VIA_ESCORT),
        "via_escort": state in VIA_ESCORT,
        "can_complete": can_write and state in COMPLETE_FROM,
    }


def _day_view(day_list: DayList, *, can_write: bool) -> list[dict[str, Any]]:
    """The sessions in time order, each with its appointments."""
    by_session: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for entry in day_list.entries:
        by_session.setdefault(entry.session_id, []).append(_entry_view(entry, can_write=can_write))
    return [
        {
            "time": f"{_local(s.starts_at):%H:%M}{DASH}{_local(s.ends_at):%H:%M}",
            "provider": s.provider_name,
            "format": FORMAT_LABELS[s.format],
            "location": LOCATION_LABELS[s.location_type],
            "booked": s.booked,
            "capacity": s.capacity,
            "cancelled": s.cancelled,
            "entries": by_session.get(s.session_id, []),
        }
        for s in day_list.sessions
    ]


@router.get("/day", response_class=HTMLResponse)
async def day_page(
    request: Request,
    unit_id: str | None = None,
    day_text: Annotated[str | None, Query(alias="date")] = None,
    notice: str | None = None,
) -> Response:
    signed_in = await _signed_in(request)
    if signed_in is None:
        return _to_login(request)
    day = _parse_date(day_text) if day_text else _today()
    wanted_unit = _parse_uuid(unit_id)
    if day is None or (unit_id and wanted_unit is None):
        return _error_page(400, "Bad request", "Give the unit as an id and the day as YYYY-MM-DD.")
    try:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            viewer = await get_viewer(request, signed_in.principal, session)
            access.require_market_reader(viewer)
            unit = wanted_unit or viewer.organization_id
            if unit is None:
                return _render("choose_unit.html", day=day.isoformat(), csrf=signed_in.csrf)
            # The API's day list: the same plan, names and access log entry.
            plan = await day_plan(session, viewer=viewer, unit_id=unit, day=day, escorts_available=None)
            await audit.record_access(session, viewer, reads=plan.reads, what="market.day_list")
            day_list = to_day_list(plan)
            unit_ref = await organizations.get(session, unit)
            page = _render(
                "day.html",
                csrf=signed_in.csrf,
                unit_id=str(unit),
                unit_name=unit_ref.name if unit_ref else str(unit),
                day=day,
                day_label=f"{day:%A %d %B %Y}",
                previous_day=_day_url(unit, day - timedelta(days=1)),
                next_day=_day_url(unit, day + timedelta(days=1)),
                today=_day_url(unit, _today()),
                announcements=f"{PREFIX}/announcements?"
                + urlencode({"unit_id": str(unit), "from": day.isoformat()}),
                sessions=_day_view(day_list, can_write=viewer.role in access.MARKET_WRITERS),
                conflicts=[
                    f"{_local(c.hour):%H:%M}: {c.detail}" if c.hour else c.detail for c in day_list.conflicts
                ],
                notice=NOTICES.get(notice or ""),
                outcomes=[(code.value, label) for code, label in OUTCOME_LABELS.items()],
                subject=viewer.subject,
            )
    except ProblemError as exc:
        return _problem_page(exc)
    return page


# --- check-in and outcome -----------------------------------------------------------------------


class _Stale(Exception):
    """The form showed an older version of the appointment."""


async def _change(request: Request, appointment_id: str, *, what: str) -> Response:
    """Shared frame of the two forms: sign-in, CSRF, the appointment at the form's version."""
    if not _same_origin(request):
        return _cross_site()
    signed_in = await _signed_in(request)
    if signed_in is None:
        return _to_login(request)
    form = await _form(request)
    if form is None or not _csrf_ok(signed_in, form):
        return _error_page(
            403,
            "Forbidden",
            "The form is missing its security token. Reload the page and try again.",
        )
    target = _parse_uuid(appointment_id)
    version = form.get("version", "")
    if target is None or not version.isdigit():
        return _error_page(400, "Bad request", "The form does not name an appointment version.")
    unit: uuid.UUID | None = None
    day = _today()
    try:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            viewer = await get_viewer(request, signed_in.principal, session)
            access.require_market_writer(viewer)
            appointment = await appointments.load_appointment(session, viewer=viewer, appointment_id=target)
            market_session = await sessions.load_session(
                session, viewer=viewer, session_id=appointment.session_id
            )
            unit, day = market_session.unit_id, _local(market_session.starts_at).date()
            if appointment.version != int(version):
                raise _Stale
            if what == "check-in":
                await _check_in(session, viewer, appointment, form)
            else:
                await _complete(session, viewer, appointment, form)
    except (_Stale, StaleDataError, IllegalAppointmentTransition, IntegrityError):
        # Someone else moved it first, or a second tap: nothing was saved.
        assert unit is not None
        return _redirect(_day_url(unit, day, "stale"))
    except ValidationError:
        assert unit is not None
        return _redirect(_day_url(unit, day, "invalid"))
    except ProblemError as exc:
        return _problem_page(exc)
    assert unit is not None
    return _redirect(_day_url(unit, day, "checked_in" if what == "check-in" else "completed"))


async def _check_in(
    session: AsyncSession, viewer: Viewer, appointment: MarketAppointment, form: Mapping[str, str]
) -> None:
    raw = form.get("minutes_late", "").strip() or "0"
    # Anything but a whole number fails the schema's own check (0 to 600) and answers "invalid".
    data = CheckIn(minutes_late=int(raw) if raw.isdigit() else -1)
    if appointment.state in VIA_ESCORT and appointment.state not in CHECK_IN_FROM:
        # The inmate is here, so the escort happened: confirm it first, as its own recorded step.
        await appointments.transition(
            session,
            viewer=viewer,
            appointment=appointment,
            data=AppointmentTransition(to=AppointmentState.ESCORT_CONFIRMED),
        )
    await checkins.check_in(session, viewer=viewer, appointment=appointment, data=data)


async def _complete(
    session: AsyncSession, viewer: Viewer, appointment: MarketAppointment, form: Mapping[str, str]
) -> None:
    data = Completion.model_validate(
        {
            "outcome_code": form.get("outcome_code", ""),
            "follow_up_needed": form.get("follow_up_needed") in ("on", "true", "1"),
        }
    )
    await checkins.complete(session, viewer=viewer, appointment=appointment, data=data)


@router.post("/appointments/{appointment_id}/check-in")
async def check_in(request: Request, appointment_id: str) -> Response:
    return await _change(request, appointment_id, what="check-in")


@router.post("/appointments/{appointment_id}/complete")
async def complete(request: Request, appointment_id: str) -> Response:
    return await _change(request, appointment_id, what="complete")


# --- the announcement sheet ---------------------------------------------------------------------


@router.get("/announcements", response_class=HTMLResponse)
async def announcements(request: Request) -> Response:
    signed_in = await _signed_in(request)
    if signed_in is None:
        return _to_login(request)
    query = request.query_params
    first = _parse_date(query.get("from")) if query.get("from") else _today()
    last = _parse_date(query.get("to")) if query.get("to") else (first + timedelta(days=6) if first else None)
    wanted_unit = _parse_uuid(query.get("unit_id"))
    if first is None or last is None or (query.get("unit_id") and wanted_unit is None):
        return _error_page(400, "Bad request", "Give the unit as an id and the days as YYYY-MM-DD.")
    if last < first or (last - first).days >= MAX_SHEET_DAYS:
        return _error_page(
            400, "Bad request", f"Give a period of 1 to {MAX_SHEET_DAYS} days, from before to."
        )
    try:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            viewer = await get_viewer(request, signed_in.principal, session)
            access.require_market_reader(viewer)
            unit = wanted_unit or viewer.organization_id
            if unit is None:
                return _render("choose_unit.html", day=first.isoformat(), csrf=signed_in.csrf)
            found: list[MarketSession] = []
            cursor: str | None = None
            for _ in range(SHEET_PAGES):
                page, cursor = await sessions.list_sessions_page(
                    session,
                    viewer=viewer,
                    unit_id=unit,
                    from_date=first,
                    to_date=last,
                    include_cancelled=False,
                    limit=200,
                    cursor=cursor,
                )
                found.extend(page)
                if cursor is None:
                    break
            names = await providers.providers_by_id(session, (s.provider_id for s in found))
            unit_ref = await organizations.get(session, unit)
    except ProblemError as exc:
        return _problem_page(exc)
    days: dict[date, list[dict[str, Any]]] = {}
    for market_session in found:
        start = _local(market_session.starts_at)
        days.setdefault(start.date(), []).append(
            {
                "time": f"{start:%H:%M}{DASH}{_local(market_session.ends_at):%H:%M}",
                "provider": names[market_session.provider_id].name,
                "format": FORMAT_LABELS[market_session.format],
                "location": LOCATION_LABELS[market_session.location_type],
                "location_note": market_session.location_note,
                "announcement": market_session.announcement,
            }
        )
    return _render(
        "announcements.html",
        csrf=signed_in.csrf,
        unit_id=str(unit),
        unit_name=unit_ref.name if unit_ref else str(unit),
        first=first,
        last=last,
        period=f"{first:%d.%m.%Y} {DASH} {last:%d.%m.%Y}",
        days=[(f"{day:%A %d %B}", items) for day, items in sorted(days.items())],
        day_list=_day_url(unit, first),
    )
