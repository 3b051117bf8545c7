"""The staff pages' texts in Norwegian bokmål (the default) and English, side by side.

Each entry is ``(bokmål, English)``, so a text never exists in one language only. Placeholders are
``str.format`` fields; the templates get :func:`text` bound to the page's language as ``t``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Literal, TypeVar, get_args

from case_api.market.models import AppointmentState, LocationType, OutcomeCode, SessionFormat

Lang = Literal["nb", "en"]
E = TypeVar("E", bound=StrEnum)
LANGS: tuple[Lang, ...] = get_args(Lang)
DEFAULT_LANG: Lang = "nb"
# The language staff write free text in (announcements, location notes): marked on English pages.
CONTENT_LANG: Lang = "nb"
# The language of messages from the API's service layer and the token verifier.
SYSTEM_LANG: Lang = "en"
# The switch in the page header: the other language, named in that language.
SWITCH: dict[Lang, tuple[Lang, str]] = {"nb": ("en", "English"), "en": ("nb", "Norsk")}

TEXTS: dict[str, tuple[str, str]] = {
    # frame
    "brand": ("Servicetorg", "Service market"),
    "nav": ("Sider", "Pages"),
    "sign_out": ("Logg ut", "Sign out"),
    "day_list": ("Dagsliste", "Day list"),
    "announcement_sheet": ("Oppslag", "Announcement sheet"),
    "back_to_day_list": ("Tilbake til dagslisten", "Back to the day list"),
    # the warning before the sign-in expires
    "expiry.soon": ("Innloggingen din utløper kl. {time}.", "Your sign-in expires at {time}."),
    "expiry.over": ("Innloggingen din er utløpt.", "Your sign-in has expired."),
    "expiry.hint": (
        "Logg inn på nytt for å fortsette. Lagrer du et skjema etter at innloggingen er utløpt, "
        "blir du bedt om å logge inn, og det du fylte inn, blir tatt vare på.",
        "Sign in again to carry on. If you save a form after your sign-in has expired, you are "
        "asked to sign in and what you filled in is kept.",
    ),
    "expiry.action": ("Logg inn på nytt", "Sign in again"),
    # sign-in
    "login.title": ("Logg inn", "Sign in"),
    "login.heading": ("Logg inn på servicetorget", "Sign in to the service market"),
    "login.token": ("Lim inn tilgangstokenet ditt", "Paste your access token"),
    "login.button": ("Logg inn", "Sign in"),
    "login.button_pending": ("Logg inn og lagre", "Sign in and save"),
    "login.note": (
        "Tokenet blir liggende i denne nettleseren bare til det utløper.",
        "The token stays in this browser only until it expires.",
    ),
    "login.expired": (
        "Innloggingen din er utløpt. Lim inn et nytt token.",
        "Your sign-in has expired. Paste a new token.",
    ),
    "login.cross_site": (
        "Innloggingsskjemaet ble sendt fra et annet nettsted.",
        "The sign-in form was sent from another site.",
    ),
    "login.form_expired": (
        "Innloggingsskjemaet var utløpt. Lim inn tokenet ditt på nytt.",
        "The sign-in form had expired. Paste your token again.",
    ),
    "login.empty": ("Lim inn tokenet ditt.", "Paste your token."),
    "login.rejected": ("Tokenet ble ikke godtatt:", "The token was not accepted:"),
    "login.role": (
        "Rollen «{role}» har ikke tilgang til servicetorget.",
        "The role '{role}' has no access to the service market.",
    ),
    "login.role_write": (
        "Rollen «{role}» kan ikke registrere oppmøte eller utfall.",
        "The role '{role}' may not record check-ins or outcomes.",
    ),
    "login.pending": (
        "Innloggingen din utløp før skjemaet ble lagret. Ingenting er lagret ennå. "
        "Logg inn på nytt, så lagres dette:",
        "Your sign-in expired before the form was saved. Nothing has been saved yet. "
        "Sign in again and this is saved:",
    ),
    "pending.check_in": (
        "Oppmøte for {name}, {minutes} min for sent",
        "Check-in of {name}, {minutes} min late",
    ),
    "pending.complete": ("Utfall for {name}: {outcome}", "Outcome for {name}: {outcome}"),
    "pending.follow_up": ("trenger oppfølging", "follow-up needed"),
    # choosing a unit
    "choose.title": ("Velg enhet", "Choose a unit"),
    "choose.heading": ("Hvilken enhet?", "Which unit?"),
    "choose.intro": (
        "Innloggingen din er ikke knyttet til én enhet. Oppgi enhetens id.",
        "Your sign-in is not tied to one unit. Give the unit's id.",
    ),
    "choose.unit": ("Enhets-id", "Unit id"),
    "choose.button": ("Vis dagslisten", "Show the day list"),
    # the day list
    "day.title": ("Dagsliste {day}", "Day list {day}"),
    "day.previous": ("Forrige dag", "Previous day"),
    "day.next": ("Neste dag", "Next day"),
    "day.today": ("I dag", "Today"),
    "day.day": ("Dag", "Day"),
    "day.show": ("Vis", "Show"),
    "day.conflicts": ("Konflikter", "Conflicts"),
    "day.booked": ("{booked} av {capacity} plasser tatt", "{booked} of {capacity} places taken"),
    "day.cancelled": ("Avlyst", "Cancelled"),
    "day.escort": ("Følge", "Escort"),
    "day.escort_unconfirmed": ("følge ikke bekreftet ennå", "escort not yet confirmed"),
    "day.minutes_late": ("Min. for sent", "Min. late"),
    "day.check_in": ("Sjekk inn", "Check in"),
    "day.check_in_name": ("Sjekk inn {name}", "Check in {name}"),
    "day.outcome": ("Utfall", "Outcome"),
    "day.outcome_choose": ("Velg utfall …", "Choose outcome…"),
    "day.follow_up": ("Trenger oppfølging", "Follow-up needed"),
    "day.save_outcome": ("Lagre utfall", "Save outcome"),
    "day.save_outcome_name": ("Lagre utfall for {name}", "Save outcome for {name}"),
    "day.nobody": ("Ingen påmeldt.", "Nobody booked."),
    "day.no_sessions": ("Ingen økter denne dagen.", "No sessions this day."),
    "day.signed_in_as": ("Logget inn som {subject}.", "Signed in as {subject}."),
    "escort.officer": ("1 betjent", "1 officer"),
    "escort.officers": ("{count} betjenter", "{count} officers"),
    "escort.lift": ("heis", "lift"),
    "escort.high_security": ("høy sikkerhet", "high security"),
    "escort.none": ("uten følge", "no escort"),
    "conflict.double_booked": (
        "{name} er satt opp på to økter som overlapper",
        "{name} is booked in two overlapping sessions",
    ),
    "conflict.escorts": (
        "{needed} betjenter trengs til følge, {available} er ledige",
        "{needed} escorts needed, {available} available",
    ),
    "conflict.capacity": (
        "{provider}: {booked} påmeldt, plass til {capacity}",
        "{provider}: {booked} booked, capacity {capacity}",
    ),
    "notice.checked_in": ("Oppmøte registrert.", "Checked in."),
    "notice.completed": ("Utfall lagret.", "Outcome recorded."),
    "notice.stale": (
        "Noen andre har endret denne avtalen i mellomtiden, så ingenting ble lagret. "
        "Listen under er oppdatert: sjekk den og prøv igjen.",
        "This appointment was changed meanwhile by someone else, so nothing was saved. "
        "The list below is fresh: check it and try again.",
    ),
    "notice.invalid": (
        "Skjemaet var ikke riktig fylt ut; ingenting ble lagret.",
        "The form was not filled in correctly; nothing was saved.",
    ),
    # the announcement sheet
    "sheet.title": ("Oppslag {period}", "Announcements {period}"),
    "sheet.from": ("Fra", "From"),
    "sheet.to": ("Til", "To"),
    "sheet.show": ("Vis", "Show"),
    "sheet.print": ("Skriv ut", "Print"),
    "sheet.heading": ("Servicetorget i {unit}", "Service market at {unit}"),
    "sheet.empty": ("Ingen økter planlagt i denne perioden.", "No sessions planned in this period."),
    # errors
    "error.technical": ("Teknisk melding:", "Technical message:"),
    "error.cross_site": ("Skjemaet ble sendt fra et annet nettsted.", "The form was sent from another site."),
    "error.csrf": (
        "Skjemaet mangler sikkerhetsnøkkelen sin. Last inn siden på nytt og prøv igjen.",
        "The form is missing its security token. Reload the page and try again.",
    ),
    "error.version": (
        "Skjemaet oppgir ingen versjon av avtalen.",
        "The form does not name an appointment version.",
    ),
    "error.day_query": (
        "Oppgi enheten som id og dagen som ÅÅÅÅ-MM-DD.",
        "Give the unit as an id and the day as YYYY-MM-DD.",
    ),
    "error.sheet_query": (
        "Oppgi enheten som id og dagene som ÅÅÅÅ-MM-DD.",
        "Give the unit as an id and the days as YYYY-MM-DD.",
    ),
    "error.sheet_period": (
        "Oppgi en periode på 1 til {days} dager, med fra-dagen før til-dagen.",
        "Give a period of 1 to {days} days, from before to.",
    ),
    "status.400": ("Ugyldig forespørsel", "Bad request"),
    "status.401": ("Ikke innlogget", "Not signed in"),
    "status.403": ("Ingen tilgang", "Forbidden"),
    "status.404": ("Finnes ikke", "Not found"),
    "status.409": ("Konflikt", "Conflict"),
    "status.422": ("Ugyldige opplysninger", "Invalid data"),
    "status.other": ("Noe gikk galt", "Something went wrong"),
    "status.403.detail": ("Rollen din har ikke tilgang til dette.", "Your role has no access to this."),
    "status.404.detail": (
        "Det finnes ikke, eller du har ikke tilgang til det.",
        "It does not exist, or you have no access to it.",
    ),
}

STATE_LABELS: dict[AppointmentState, tuple[str, str]] = {
    AppointmentState.REQUESTED: ("Forespurt", "Requested"),
    AppointmentState.SCHEDULED: ("Planlagt", "Scheduled"),
    AppointmentState.ESCORT_CONFIRMED: ("Følge bekreftet", "Escort confirmed"),
    AppointmentState.CHECKED_IN: ("Sjekket inn", "Checked in"),
    AppointmentState.COMPLETED: ("Gjennomført", "Completed"),
    AppointmentState.NO_SHOW: ("Ikke møtt", "No show"),
    AppointmentState.CANCELLED_BY_PRISON: ("Avlyst av fengselet", "Cancelled by the prison"),
    AppointmentState.CANCELLED_BY_PROVIDER: ("Avlyst av tilbyderen", "Cancelled by the provider"),
    AppointmentState.MOVED_TO_CELL_VISIT: ("Flyttet til cellebesøk", "Moved to a cell visit"),
    AppointmentState.MOVED_TO_VIDEO: ("Flyttet til video", "Moved to video"),
    AppointmentState.RESCHEDULED: ("Flyttet til ny tid", "Rescheduled"),
}
OUTCOME_LABELS: dict[OutcomeCode, tuple[str, str]] = {
    OutcomeCode.HELD: ("Gjennomført", "Held"),
    OutcomeCode.PARTLY_HELD: ("Delvis gjennomført", "Partly held"),
    OutcomeCode.NOT_HELD_INMATE_DECLINED: (
        "Ikke gjennomført: innsatte ville ikke",
        "Not held: inmate declined",
    ),
    OutcomeCode.NOT_HELD_PROVIDER_ABSENT: (
        "Ikke gjennomført: tilbyderen kom ikke",
        "Not held: provider absent",
    ),
    OutcomeCode.NOT_HELD_NO_ESCORT: ("Ikke gjennomført: manglet følge", "Not held: no escort"),
}
LOCATION_LABELS: dict[LocationType, tuple[str, str]] = {
    LocationType.SERVICE_MARKET_ROOM: ("Servicetorget", "Service market room"),
    LocationType.CELL: ("Celle", "Cell"),
    LocationType.VIDEO: ("Video", "Video"),
    LocationType.OTHER: ("Annet sted", "Other place"),
}
FORMAT_LABELS: dict[SessionFormat, tuple[str, str]] = {
    SessionFormat.ONE_TO_ONE: ("Enesamtaler", "One-to-one talks"),
    SessionFormat.THEME_EVENING: ("Temakveld", "Theme evening"),
    SessionFormat.PRESENTATION: ("Presentasjon", "Presentation"),
    SessionFormat.CELL_VISIT: ("Cellebesøk", "Cell visit"),
    SessionFormat.VIDEO: ("Video", "Video"),
}

_WEEKDAYS = (
    ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"),
    ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
)
_MONTHS = (
    (
        "januar", "februar", "mars", "april", "mai", "juni",
        "juli", "august", "september", "oktober", "november", "desember",
    ),
    (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
)  # fmt: skip


def _index(lang: Lang) -> int:
    return LANGS.index(lang)


def text(lang: Lang, key: str, **values: object) -> str:
    """The text ``key`` in ``lang``, with its placeholders filled in."""
    template = TEXTS[key][_index(lang)]
    return template.format(**values) if values else template


def label(lang: Lang, labels: Mapping[E, tuple[str, str]], value: E) -> str:
    """The label of an enum value in ``lang``."""
    return labels[value][_index(lang)]


def day_name(lang: Lang, day: date, *, year: bool = True) -> str:
    """'Fredag 6. desember 2024' or 'Friday 6 December 2024': a heading, so capitalised."""
    i = _index(lang)
    weekday, month = _WEEKDAYS[i][day.weekday()], _MONTHS[i][day.month - 1]
    dotted = "." if lang == "nb" else ""
    name = f"{weekday} {day.day}{dotted} {month}" + (f" {day.year}" if year else "")
    return name[0].upper() + name[1:]
