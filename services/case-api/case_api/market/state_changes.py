"""An appointment's change of state: checked against the lifecycle and written on the case's
timeline. Shared by the session, appointment and check-in rules; flushing is the caller's."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer
from case_api.audit import service as audit
from case_api.market.errors import IllegalAppointmentTransition
from case_api.market.lifecycle import TRANSITIONS, allowed_next
from case_api.market.models import AppointmentState, LocationType, MarketAppointment, PrisonCancelCause
from shared.db import utcnow


def check_transition(appointment: MarketAppointment, to: AppointmentState) -> None:
    if to not in TRANSITIONS[appointment.state]:
        raise IllegalAppointmentTransition(
            f"An appointment in {appointment.state.value!r} cannot become {to.value!r}",
            current_state=appointment.state.value,
            allowed_next=[state.value for state in allowed_next(appointment.state)],
        )


def set_state(
    session: AsyncSession,
    viewer: Viewer,
    appointment: MarketAppointment,
    to: AppointmentState,
    *,
    cause: PrisonCancelCause | None = None,
    reason: str | None = None,
    extra: dict[str, object] | None = None,
) -> None:
    """Move the appointment (the transition was checked) and write it on the case's timeline."""
    check_transition(appointment, to)
    before = appointment.state
    now = utcnow()
    appointment.state = to
    appointment.state_changed_at = now
    appointment.updated_at = now
    appointment.cancel_cause = cause
    appointment.state_reason = reason
    if to is AppointmentState.MOVED_TO_CELL_VISIT:
        appointment.moved_to = LocationType.CELL
    elif to is AppointmentState.MOVED_TO_VIDEO:
        appointment.moved_to = LocationType.VIDEO
    audit.record_change(
        session,
        viewer,
        case_id=appointment.case_id,
        action=f"market.appointment_{to.value}",
        entity="market_appointment",
        entity_id=appointment.id,
        before={"state": before.value},
        after={
            "state": to.value,
            "cause": cause.value if cause else None,
            "reason": reason,
            **(extra or {}),
        },
    )
