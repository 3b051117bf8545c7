"""The legal states and transitions of a service market appointment."""

from __future__ import annotations

from case_api.market.models import AppointmentState as S

_CANCELS = frozenset({S.CANCELLED_BY_PRISON, S.CANCELLED_BY_PROVIDER})
_MOVES = frozenset({S.MOVED_TO_CELL_VISIT, S.MOVED_TO_VIDEO})

TRANSITIONS: dict[S, frozenset[S]] = {
    S.REQUESTED: frozenset({S.SCHEDULED, S.RESCHEDULED}) | _CANCELS | _MOVES,
    S.SCHEDULED: frozenset({S.ESCORT_CONFIRMED, S.NO_SHOW, S.RESCHEDULED}) | _CANCELS | _MOVES,
    S.ESCORT_CONFIRMED: frozenset({S.CHECKED_IN, S.NO_SHOW, S.RESCHEDULED}) | _CANCELS | _MOVES,
    S.CHECKED_IN: frozenset({S.COMPLETED}) | _CANCELS,
    # A moved appointment still happens, in the cell or on video: it can be checked in.
    S.MOVED_TO_CELL_VISIT: frozenset({S.CHECKED_IN}) | _CANCELS,
    S.MOVED_TO_VIDEO: frozenset({S.CHECKED_IN}) | _CANCELS,
    S.COMPLETED: frozenset(),
    S.NO_SHOW: frozenset(),
    S.CANCELLED_BY_PRISON: frozenset(),
    S.CANCELLED_BY_PROVIDER: frozenset(),
    S.RESCHEDULED: frozenset(),
}

# States that hold a place in the session (with `moved_to` unset): what capacity counts.
ACTIVE = frozenset({S.REQUESTED, S.SCHEDULED, S.ESCORT_CONFIRMED, S.CHECKED_IN, S.COMPLETED})
# States in which the inmate is busy at the session's time: what the double-booking rule counts.
OCCUPIES_INMATE = ACTIVE | _MOVES
# Appointments still to happen: a cancelled session takes these with it.
OPEN = frozenset({S.REQUESTED, S.SCHEDULED, S.ESCORT_CONFIRMED}) | _MOVES
# The inmate came: counted as served.
ATTENDED = frozenset({S.CHECKED_IN, S.COMPLETED})


def allowed_next(state: S) -> list[S]:
    return sorted(TRANSITIONS[state], key=lambda s: s.value)
