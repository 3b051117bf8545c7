"""Check-in and outcome of a service market appointment; a referral becomes an action in the
case's domain and an event. Flush, never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api import events
from case_api.access import Viewer
from case_api.cases.models import Case
from case_api.domains import service as domains
from case_api.domains.models import CaseDomain, Domain
from case_api.domains.schemas import ActionCreate
from case_api.market import access
from case_api.market.models import (
    AppointmentState,
    MarketAppointment,
    MarketCheckin,
    MarketProvider,
    MarketSession,
)
from case_api.market.schemas import CheckIn, Completion
from case_api.market.state_changes import check_transition, set_state
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.errors import Forbidden


async def checkins_by_appointment(
    session: AsyncSession, appointment_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, MarketCheckin]:
    """The check-in of each appointment that has one."""
    rows = await session.execute(
        select(MarketCheckin).where(col(MarketCheckin.appointment_id).in_(list(appointment_ids)))
    )
    return {checkin.appointment_id: checkin for checkin in rows.scalars()}


async def checkin_of(session: AsyncSession, appointment: MarketAppointment) -> MarketCheckin | None:
    return (
        await session.execute(
            select(MarketCheckin).where(col(MarketCheckin.appointment_id) == appointment.id)
        )
    ).scalar_one_or_none()


async def check_in(
    session: AsyncSession, *, viewer: Viewer, appointment: MarketAppointment, data: CheckIn
) -> MarketAppointment:
    """The inmate has arrived (or the provider reached the cell or the video link)."""
    access.require_market_writer(viewer)
    check_transition(appointment, AppointmentState.CHECKED_IN)
    checkin = MarketCheckin(
        appointment_id=appointment.id, checked_in_by=viewer.subject, minutes_late=data.minutes_late
    )
    session.add(checkin)
    set_state(
        session, viewer, appointment, AppointmentState.CHECKED_IN, extra={"minutes_late": data.minutes_late}
    )
    await session.flush()
    return appointment


async def complete(
    session: AsyncSession, *, viewer: Viewer, appointment: MarketAppointment, data: Completion
) -> MarketAppointment:
    """Record the outcome; a referral becomes an action in the case's domain and an event."""
    access.require_market_writer(viewer)
    if not access.sees_case_details(viewer) and (data.domains_touched or data.referral_made):
        raise Forbidden("Service market staff record attendance and outcome, not domains or referrals")
    check_transition(appointment, AppointmentState.COMPLETED)
    checkin = await checkin_of(session, appointment)
    assert checkin is not None, "a checked-in appointment has a check-in"
    now = utcnow()
    checkin.outcome_code = data.outcome_code
    checkin.domains_touched = [domain.value for domain in data.domains_touched]
    checkin.follow_up_needed = data.follow_up_needed
    checkin.referral_made = data.referral_made
    checkin.referral_domain = data.referral_domain
    checkin.referral_note = data.referral_note
    checkin.completed_by = viewer.subject
    checkin.completed_at = now
    set_state(
        session,
        viewer,
        appointment,
        AppointmentState.COMPLETED,
        extra={
            "outcome_code": data.outcome_code.value,
            "domains_touched": checkin.domains_touched,
            "follow_up_needed": data.follow_up_needed,
            "referral_made": data.referral_made,
        },
    )
    if data.referral_made:
        assert data.referral_domain is not None
        assert data.referral_note is not None
        await _refer(session, viewer, appointment, checkin, data.referral_domain, data.referral_note)
    await session.flush()
    return appointment


async def _refer(
    session: AsyncSession,
    viewer: Viewer,
    appointment: MarketAppointment,
    checkin: MarketCheckin,
    domain: Domain,
    note: str,
) -> None:
    case = await session.get(Case, appointment.case_id)
    market_session = await session.get(MarketSession, appointment.session_id)
    assert case is not None
    assert market_session is not None
    provider = await session.get(MarketProvider, market_session.provider_id)
    assert provider is not None
    case_domain = (
        await session.execute(
            select(CaseDomain).where(col(CaseDomain.case_id) == case.id, col(CaseDomain.domain) == domain)
        )
    ).scalar_one()
    action = await domains.add_action(
        session,
        viewer=viewer,
        case=case,
        case_domain=case_domain,
        data=ActionCreate(description=note, responsible_organization_id=provider.organization_id),
    )
    checkin.referral_action_id = action.id
    events.emit(
        session,
        contracts.CaseMarketReferralMade,
        case,
        appointment_id=str(appointment.id),
        provider_organization_id=str(provider.organization_id),
        domain=domain.value,
        domain_action_id=str(action.id),
    )
