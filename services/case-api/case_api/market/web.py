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

The pages are in Norwegian bokmål, or in English after ``?lang=en`` (kept in a cookie); the texts
are in :mod:`case_api.market.texts`. A page warns before the sign-in expires, and a form sent after
it expired is kept and saved once the user signs in again (docs/servicetorg.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
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
from case_api.market.models import AppointmentState, MarketAppointment, MarketSession, OutcomeCode
from case_api.market.schemas import (
    EARLIEST_DAY,
    LATEST_DAY,
    AppointmentTransition,
    CheckIn,
    Completion,
    ConflictKind,
    DayList,
    DayListConflict,
    DayListEntry,
)
from case_api.market.sessions import LOCAL_TZ
from case_api.market.texts import (
    CONTENT_LANG,
    DEFAULT_LANG,
    FORMAT_LABELS,
    LANGS,
    LOCATION_LABELS,
    OUTCOME_LABELS,
    STATE_LABELS,
    SWITCH,
    SYSTEM_LANG,
    TEXTS,
    Lang,
    day_name,
    label,
    text,
)
from case_api.organizations import service as organizations
from shared.auth import Principal, TokenVerifier
from shared.db import unit_of_work
from shared.errors import ProblemError, Unauthorized

PREFIX = "/market/ui"
DASH = "\N{EN DASH}"
COOKIE = "tilbake_market_ui"
LOGIN_COOKIE = "tilbake_market_ui_login"  # the pre-sign-in id the login form's CSRF token is bound to
LANG_COOKIE = "tilbake_market_ui_lang"  # the language chosen with ?lang=
LANG_COOKIE_SECONDS = 365 * 24 * 3600
WARN_BEFORE_EXPIRY = 300  # seconds: how long before the sign-in expires the page warns
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

# Fixed notices a redirect may ask the day list to show: the query names one, never the text.
NOTICES = {"checked_in": "ok", "completed": "ok", "stale": "warn", "invalid": "warn"}
_LANG_CODES: dict[str, Lang] = {lang: lang for lang in LANGS}
# Straight to checked_in, per the lifecycle; `scheduled` goes through escort_confirmed first.
CHECK_IN_FROM = frozenset(s for s, nexts in TRANSITIONS.items() if AppointmentState.CHECKED_IN in nexts)
VIA_ESCORT = frozenset(
    s
    for s, nexts in TRANSITIONS.items()
    if AppointmentState.ESCORT_CONFIRMED in nexts and AppointmentState.ESCORT_CONFIRMED in CHECK_IN_FROM
)
COMPLETE_FROM = frozenset(s for s, nexts in TRANSITIONS.items() if AppointmentState.COMPLETED in nexts)


# --- rendering ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A text of the page's language, and maybe a detail in :data:`SYSTEM_LANG` (a verifier's or
    the service layer's message), which the page marks with its own ``lang``."""

    text: str
    detail: str | None = None


def _lang(request: Request) -> Lang:
    """``?lang=`` first, then the cookie it leaves, else bokmål."""
    for wanted in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if wanted in _LANG_CODES:
            return _LANG_CODES[wanted]
    return DEFAULT_LANG


def _remember_lang(request: Request, response: Response) -> None:
    wanted = _LANG_CODES.get(request.query_params.get("lang") or "")
    if wanted and request.cookies.get(LANG_COOKIE) != wanted:
        response.set_cookie(
            LANG_COOKIE,
            wanted,
            max_age=LANG_COOKIE_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=_secure_cookie(request),
        )


def _switch_url(request: Request, lang: Lang) -> str:
    """This page in the other language; after a POST, the page the POST came from is not known, so
    the login form (for its own POST) or the day list."""
    path = request.url.path
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "notice")]
    if request.method != "GET":
        path, query = (path if path == f"{PREFIX}/login" else f"{PREFIX}/day"), []
    return f"{path}?{urlencode([*query, ('lang', lang)])}"


def _lang_attr(page_lang: Lang, of: Lang) -> Markup:
    """` lang="xx"` for a part in another language than the page's (WCAG 3.1.2), else nothing."""
    return Markup(f' lang="{of}"') if of != page_lang else Markup("")


def _render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    nonce = secrets.token_urlsafe(16)
    other, other_name = SWITCH[lang]
    context.setdefault("expiry", None)
    html = _templates.get_template(template).render(
        prefix=PREFIX,
        nonce=nonce,
        lang=lang,
        t=partial(text, lang),
        lang_attr=partial(_lang_attr, lang),
        content_lang=CONTENT_LANG,
        system_lang=SYSTEM_LANG,
        switch={"url": _switch_url(request, other), "lang": other, "name": other_name},
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=_page_headers(nonce))
    _remember_lang(request, response)
    return response


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


def _error_page(
    request: Request, status_code: int, message: Message, *, expiry: dict[str, Any] | None = None
) -> HTMLResponse:
    lang = _lang(request)
    key = f"status.{status_code}"
    title = text(lang, key if key in TEXTS else "status.other")
    return _render(
        request, "error.html", status_code=status_code, title=title, message=message, expiry=expiry
    )


def _problem_page(request: Request, exc: ProblemError) -> HTMLResponse:
    """The service layer's problem: a title and explanation in the page's language, its own
    (English) detail as the technical message."""
    lang = _lang(request)
    explained = f"status.{exc.status}.detail"
    explanation = text(lang, explained) if explained in TEXTS else ""
    return _error_page(request, exc.status, Message(explanation, exc.detail or exc.title))


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


def _cross_site(request: Request) -> HTMLResponse:
    return _error_page(request, 403, Message(text(_lang(request), "error.cross_site")))


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    token: str
    csrf: str
    expires_at: int | None  # the token's `exp`: when the page starts to warn


def _token_expiry(token: str) -> int | None:
    """The `exp` of a token the verifier has just accepted, read from its payload."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return int(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


async def _signed_in(request: Request) -> SignedIn | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.principal(token)
    except Unauthorized:
        return None
    return SignedIn(
        principal=principal,
        token=token,
        csrf=csrf_token(request, principal, token),
        expires_at=_token_expiry(token),
    )


def _here(request: Request) -> str:
    """This page's path and query, to come back to after signing in (a GET only)."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("lang", "notice")]
    return request.url.path + (f"?{urlencode(query)}" if query else "")


def _safe_next(value: str | None) -> str | None:
    """A page of ours to go back to after signing in; anything else (another site) is dropped."""
    if not value or len(value) > 2048 or any(ord(c) < 0x20 or c == "\\" for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(f"{PREFIX}/"):
        return None
    if ".." in parts.path.split("/") or parts.path.startswith(f"{PREFIX}/login"):
        return None
    return value


def _expiry(request: Request, signed_in: SignedIn) -> dict[str, Any] | None:
    """What the page needs to warn before the sign-in expires (WCAG 2.2.1): seconds left (not a
    moment, so the tablet's clock does not matter), the local time, and a way to sign in again."""
    if signed_in.expires_at is None:
        return None
    back = _here(request) if request.method == "GET" else f"{PREFIX}/day"
    return {
        "seconds": max(0, int(signed_in.expires_at - time.time())),
        "warn": WARN_BEFORE_EXPIRY,
        "at": f"{datetime.fromtimestamp(signed_in.expires_at, LOCAL_TZ):%H:%M}",
        "sign_in": f"{PREFIX}/login?{urlencode({'next': back})}",
    }


def _drop_sign_in(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, secure=_secure_cookie(request), httponly=True)


def _to_login(request: Request) -> RedirectResponse:
    """To the login form, and back to this page afterwards when it was a GET."""
    expired = COOKIE in request.cookies
    query = {"expired": "1"} if expired else {}
    back = _here(request) if request.method == "GET" else None
    if back and back != f"{PREFIX}/day":
        query["next"] = back
    response = _redirect(f"{PREFIX}/login" + (f"?{urlencode(query)}" if query else ""))
    if expired:
        _drop_sign_in(request, response)
    _remember_lang(request, response)
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
async def index(request: Request) -> RedirectResponse:
    response = _redirect(f"{PREFIX}/day")
    _remember_lang(request, response)
    return response


@dataclass(frozen=True)
class Pending:
    """A check-in or outcome form that arrived after the sign-in expired: kept in the login form
    (hidden fields ``pending_*``) and saved once the user has signed in again."""

    what: Literal["check-in", "complete"]
    appointment_id: uuid.UUID
    version: str
    name: str  # the person as the day list showed them, to say what will be saved
    fields: dict[str, str] = field(default_factory=dict)

    def hidden(self) -> list[tuple[str, str]]:
        base = [
            ("what", self.what),
            ("appointment", str(self.appointment_id)),
            ("version", self.version),
            ("name", self.name),
        ]
        return [(f"pending_{name}", value) for name, value in [*base, *self.fields.items()]]

    def summary(self, lang: Lang) -> str:
        if self.what == "check-in":
            minutes = self.fields.get("minutes_late", "").strip() or "0"
            return text(lang, "pending.check_in", name=self.name, minutes=minutes)
        code = self.fields.get("outcome_code", "")
        outcome = label(lang, OUTCOME_LABELS, OutcomeCode(code)) if code in _OUTCOMES else code
        summary = text(lang, "pending.complete", name=self.name, outcome=outcome)
        if self.fields.get("follow_up_needed"):
            summary += f", {text(lang, 'pending.follow_up')}"
        return summary


_OUTCOMES = frozenset(code.value for code in OutcomeCode)
PENDING_FIELDS = {"check-in": ("minutes_late",), "complete": ("outcome_code", "follow_up_needed")}


def _pending(form: Mapping[str, str], *, what: str, appointment_id: str, prefix: str = "") -> Pending | None:
    """The form's change, or None when it does not name an appointment and its version."""
    target = _parse_uuid(appointment_id)
    version = form.get(f"{prefix}version", "")
    if target is None or not version.isdigit() or len(version) > 18:
        return None
    if what == "check-in":
        kind: Literal["check-in", "complete"] = "check-in"
    elif what == "complete":
        kind = "complete"
    else:
        return None
    fields = {n: form[f"{prefix}{n}"] for n in PENDING_FIELDS[kind] if f"{prefix}{n}" in form}
    return Pending(kind, target, version, form.get(f"{prefix}name", "")[:80], fields)


def _login_page(
    request: Request,
    *,
    status_code: int = 200,
    error: Message | None = None,
    pending: Pending | None = None,
    next_url: str | None = None,
) -> HTMLResponse:
    """The login form with a CSRF token bound to the browser's pre-sign-in cookie (set if missing)."""
    pre_session = request.cookies.get(LOGIN_COOKIE, "")
    fresh = not _PRE_SESSION.fullmatch(pre_session)
    if fresh:
        pre_session = secrets.token_urlsafe(32)
    lang = _lang(request)
    response = _render(
        request,
        "login.html",
        status_code=status_code,
        error=error,
        login_csrf=_login_csrf(request, pre_session),
        pending=pending.hidden() if pending else [],
        pending_summary=pending.summary(lang) if pending else None,
        next_url=next_url,
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
async def login_form(request: Request, expired: str | None = None, next: str | None = None) -> HTMLResponse:
    error = Message(text(_lang(request), "login.expired")) if expired else None
    return _login_page(request, error=error, next_url=_safe_next(next))


@router.post("/login")
async def login(request: Request) -> Response:
    lang = _lang(request)
    # Login CSRF: another site must not sign this browser in to a token of its choosing.
    if not _same_origin(request):
        return _login_page(request, status_code=403, error=Message(text(lang, "login.cross_site")))
    form = await _form(request)
    if form is None:
        return _login_page(request, status_code=403, error=Message(text(lang, "login.form_expired")))
    # What the form carried along is kept through every failed attempt, never lost.
    pending = _pending(
        form,
        what=form.get("pending_what", ""),
        appointment_id=form.get("pending_appointment", ""),
        prefix="pending_",
    )
    again = partial(_login_page, request, pending=pending, next_url=_safe_next(form.get("next")))
    if not _login_csrf_ok(request, form):
        return again(status_code=403, error=Message(text(lang, "login.form_expired")))
    token = form.get("token", "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        return again(status_code=400, error=Message(text(lang, "login.empty")))
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        principal = await verifier.principal(token)
    except Unauthorized as exc:
        return again(status_code=401, error=Message(text(lang, "login.rejected"), exc.detail or exc.title))
    if principal.role not in access.MARKET_READERS:
        return again(status_code=403, error=Message(text(lang, "login.role", role=principal.role.value)))
    if pending is not None and principal.role not in access.MARKET_WRITERS:
        # Kept for a sign-in that may save it, rather than lost on a page saying "forbidden".
        return again(
            status_code=403, error=Message(text(lang, "login.role_write", role=principal.role.value))
        )
    if pending is not None:
        response: Response = await _save(request, principal, pending)
    else:
        response = _redirect(_safe_next(form.get("next")) or f"{PREFIX}/day")
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
        return _cross_site(request)
    signed_in = await _signed_in(request)
    form = await _form(request)
    if signed_in is not None and (form is None or not _csrf_ok(signed_in, form)):
        return _error_page(request, 403, Message(text(_lang(request), "error.csrf")))
    response = _redirect(f"{PREFIX}/login")
    _drop_sign_in(request, response)
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


def _escort(lang: Lang, entry: DayListEntry) -> str:
    needs = []
    if entry.escort_officers == 1:
        needs.append(text(lang, "escort.officer"))
    elif entry.escort_officers:
        needs.append(text(lang, "escort.officers", count=entry.escort_officers))
    if entry.needs_lift:
        needs.append(text(lang, "escort.lift"))
    if entry.high_security:
        needs.append(text(lang, "escort.high_security"))
    return ", ".join(needs) or text(lang, "escort.none")


def _entry_view(lang: Lang, entry: DayListEntry, *, can_write: bool) -> dict[str, Any]:
    state: AppointmentState = entry.state
    return {
        "id": str(entry.appointment_id),
        "name": entry.person_name,
        "time": f"{_local(entry.starts_at):%H:%M}{DASH}{_local(entry.ends_at):%H:%M}",
        "provider": entry.provider_name,
        "location": label(lang, LOCATION_LABELS, entry.location_type),
        "location_note": entry.location_note,
        "escort": _escort(lang, entry),
        "high_security": entry.high_security,
        "state": state.value,
        "state_label": label(lang, STATE_LABELS, state),
        "version": entry.version,
        "can_check_in": can_write and (state in CHECK_IN_FROM or state in VIA_ESCORT),
        "via_escort": state in VIA_ESCORT,
        "can_complete": can_write and state in COMPLETE_FROM,
    }


def _day_view(lang: Lang, day_list: DayList, *, can_write: bool) -> list[dict[str, Any]]:
    """The sessions in time order, each with its appointments."""
    by_session: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for entry in day_list.entries:
        by_session.setdefault(entry.session_id, []).append(_entry_view(lang, entry, can_write=can_write))
    return [
        {
            "time": f"{_local(s.starts_at):%H:%M}{DASH}{_local(s.ends_at):%H:%M}",
            "provider": s.provider_name,
            "format": label(lang, FORMAT_LABELS, s.format),
            "location": label(lang, LOCATION_LABELS, s.location_type),
            "booked": text(lang, "day.booked", booked=s.booked, capacity=s.capacity),
            "cancelled": s.cancelled,
            "entries": by_session.get(s.session_id, []),
        }
        for s in day_list.sessions
    ]


def _conflict(lang: Lang, conflict: DayListConflict, day_list: DayList) -> Message:
    """The conflict told in the page's language from its facts; the API's (English) detail only
    when the facts are not on the list."""
    hour = f"{_local(conflict.hour):%H:%M}: " if conflict.hour else ""
    said: str | None = None
    if conflict.kind is ConflictKind.INMATE_DOUBLE_BOOKED:
        names = [e.person_name for e in day_list.entries if e.appointment_id in conflict.appointment_ids]
        if names:
            said = text(lang, "conflict.double_booked", name=names[0])
    elif conflict.kind is ConflictKind.HOUR_OVER_ESCORT_CAPACITY:
        loads = [h for h in day_list.hours if conflict.hour and h.hour == conflict.hour]
        if loads:
            said = text(
                lang, "conflict.escorts", needed=loads[0].escorts_needed, available=loads[0].escorts_available
            )
    elif conflict.kind is ConflictKind.SESSION_OVER_CAPACITY:
        found = [s for s in day_list.sessions if s.session_id in conflict.session_ids]
        if found:
            said = text(
                lang,
                "conflict.capacity",
                provider=found[0].provider_name,
                booked=found[0].booked,
                capacity=found[0].capacity,
            )
    return Message(hour + said) if said else Message(hour, conflict.detail)


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
    lang = _lang(request)
    expiry = _expiry(request, signed_in)
    day = _parse_date(day_text) if day_text else _today()
    wanted_unit = _parse_uuid(unit_id)
    if day is None or (unit_id and wanted_unit is None):
        return _error_page(request, 400, Message(text(lang, "error.day_query")), expiry=expiry)
    try:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            viewer = await get_viewer(request, signed_in.principal, session)
            access.require_market_reader(viewer)
            unit = wanted_unit or viewer.organization_id
            if unit is None:
                return _render(
                    request, "choose_unit.html", day=day.isoformat(), csrf=signed_in.csrf, expiry=expiry
                )
            # The API's day list: the same plan, names and access log entry.
            plan = await day_plan(session, viewer=viewer, unit_id=unit, day=day, escorts_available=None)
            await audit.record_access(session, viewer, reads=plan.reads, what="market.day_list")
            day_list = to_day_list(plan)
            unit_ref = await organizations.get(session, unit)
            page = _render(
                request,
                "day.html",
                csrf=signed_in.csrf,
                expiry=expiry,
                unit_id=str(unit),
                unit_name=unit_ref.name if unit_ref else str(unit),
                day=day,
                day_label=day_name(lang, day),
                previous_day=_day_url(unit, day - timedelta(days=1)),
                next_day=_day_url(unit, day + timedelta(days=1)),
                today=_day_url(unit, _today()),
                announcements=f"{PREFIX}/announcements?"
                + urlencode({"unit_id": str(unit), "from": day.isoformat()}),
                sessions=_day_view(lang, day_list, can_write=viewer.role in access.MARKET_WRITERS),
                conflicts=[_conflict(lang, c, day_list) for c in day_list.conflicts],
                notice=(NOTICES[notice], text(lang, f"notice.{notice}")) if notice in NOTICES else None,
                outcomes=[(code.value, label(lang, OUTCOME_LABELS, code)) for code in OutcomeCode],
                subject=viewer.subject,
            )
    except ProblemError as exc:
        return _problem_page(request, exc)
    return page


# --- check-in and outcome -----------------------------------------------------------------------


class _Stale(Exception):
    """The form showed an older version of the appointment."""


async def _change(request: Request, appointment_id: str, *, what: str) -> Response:
    """Shared frame of the two forms: sign-in, CSRF, then the change. A form that arrives after the
    sign-in expired is kept: the login form carries it and saves it after signing in."""
    if not _same_origin(request):
        return _cross_site(request)
    lang = _lang(request)
    form = await _form(request)
    signed_in = await _signed_in(request)
    if signed_in is None:
        pending = _pending(form, what=what, appointment_id=appointment_id) if form is not None else None
        if pending is None:
            return _to_login(request)
        page = _login_page(
            request, status_code=401, error=Message(text(lang, "login.pending")), pending=pending
        )
        if COOKIE in request.cookies:
            _drop_sign_in(request, page)
        return page
    if form is None or not _csrf_ok(signed_in, form):
        return _error_page(
            request, 403, Message(text(lang, "error.csrf")), expiry=_expiry(request, signed_in)
        )
    pending = _pending(form, what=what, appointment_id=appointment_id)
    if pending is None:
        return _error_page(request, 400, Message(text(lang, "error.version")))
    return await _save(request, signed_in.principal, pending)


async def _save(request: Request, principal: Principal, change: Pending) -> Response:
    """The check-in or outcome at the form's version, as ``principal``; back to the day list."""
    unit: uuid.UUID | None = None
    day = _today()
    try:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            viewer = await get_viewer(request, principal, session)
            access.require_market_writer(viewer)
            appointment = await appointments.load_appointment(
                session, viewer=viewer, appointment_id=change.appointment_id
            )
            market_session = await sessions.load_session(
                session, viewer=viewer, session_id=appointment.session_id
            )
            unit, day = market_session.unit_id, _local(market_session.starts_at).date()
            if appointment.version != int(change.version):
                raise _Stale
            if change.what == "check-in":
                await _check_in(session, viewer, appointment, change.fields)
            else:
                await _complete(session, viewer, appointment, change.fields)
    except (_Stale, StaleDataError, IllegalAppointmentTransition, IntegrityError):
        # Someone else moved it first, or a second tap: nothing was saved.
        assert unit is not None
        return _redirect(_day_url(unit, day, "stale"))
    except ValidationError:
        assert unit is not None
        return _redirect(_day_url(unit, day, "invalid"))
    except ProblemError as exc:
        return _problem_page(request, exc)
    assert unit is not None
    return _redirect(_day_url(unit, day, "checked_in" if change.what == "check-in" else "completed"))


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
    lang = _lang(request)
    expiry = _expiry(request, signed_in)
    query = request.query_params
    first = _parse_date(query.get("from")) if query.get("from") else _today()
    last = _parse_date(query.get("to")) if query.get("to") else (first + timedelta(days=6) if first else None)
    wanted_unit = _parse_uuid(query.get("unit_id"))
    if first is None or last is None or (query.get("unit_id") and wanted_unit is None):
        return _error_page(request, 400, Message(text(lang, "error.sheet_query")), expiry=expiry)
    if last < first or (last - first).days >= MAX_SHEET_DAYS:
        period = Message(text(lang, "error.sheet_period", days=MAX_SHEET_DAYS))
        return _error_page(request, 400, period, expiry=expiry)
    try:
        async with unit_of_work(request.app.state.sessionmaker) as session:
            viewer = await get_viewer(request, signed_in.principal, session)
            access.require_market_reader(viewer)
            unit = wanted_unit or viewer.organization_id
            if unit is None:
                return _render(
                    request, "choose_unit.html", day=first.isoformat(), csrf=signed_in.csrf, expiry=expiry
                )
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
        return _problem_page(request, exc)
    days: dict[date, list[dict[str, Any]]] = {}
    for market_session in found:
        start = _local(market_session.starts_at)
        days.setdefault(start.date(), []).append(
            {
                "time": f"{start:%H:%M}{DASH}{_local(market_session.ends_at):%H:%M}",
                "provider": names[market_session.provider_id].name,
                "format": label(lang, FORMAT_LABELS, market_session.format),
                "location": label(lang, LOCATION_LABELS, market_session.location_type),
                "location_note": market_session.location_note,
                "announcement": market_session.announcement,
            }
        )
    return _render(
        request,
        "announcements.html",
        csrf=signed_in.csrf,
        expiry=expiry,
        unit_id=str(unit),
        unit_name=unit_ref.name if unit_ref else str(unit),
        first=first,
        last=last,
        period=f"{first:%d.%m.%Y} {DASH} {last:%d.%m.%Y}",
        days=[(day_name(lang, day, year=False), items) for day, items in sorted(days.items())],
        day_list=_day_url(unit, first),
    )
