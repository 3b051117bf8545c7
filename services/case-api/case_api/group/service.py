"""Responsibility group rules: members, meetings, attendance, decisions. Flush, never commit.

The inmate chairs the group: at most one inmate membership at a time (periods may not overlap),
only an inmate member chairs, and the first inmate member chairs unless told otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from case_api import events
from case_api.access import Viewer, visible_domains
from case_api.audit import service as audit
from case_api.audit.models import TimelineEntry
from case_api.cases.errors import CaseClosed
from case_api.cases.models import Case, CaseStatus
from case_api.domains.models import HEALTH_DOMAINS, Domain
from case_api.group.errors import (
    InvalidMeeting,
    InvalidMember,
    MeetingNotFound,
    MeetingNotStarted,
    MemberNotFound,
)
from case_api.group.models import (
    HEALTH_ROLES,
    GroupMember,
    GroupRole,
    Meeting,
    MeetingDecision,
    MeetingParticipant,
)
from case_api.group.schemas import AttendanceItem, DecisionCreate, MeetingCreate, MemberCreate, MemberUpdate
from case_api.organizations import service as organizations
from case_api.organizations.service import UnknownOrganization
from shared.clock import OSLO
from shared.context import current_correlation_id
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.pagination import as_uuid, aware_datetime, decode_cursor, encode_cursor

LOCAL_TZ = OSLO
SERVICE_ACTOR_ROLE = "service"

MEMBER_FIELDS = (
    "organization_id",
    "person_name",
    "role",
    "is_chair",
    "member_from",
    "member_until",
    "post_release_contact",
    "contact_phone",
    "contact_email",
)
MEETING_FIELDS = ("starts_at", "duration_minutes", "place", "video_link", "minutes_reference")
DECISION_FIELDS = ("meeting_id", "domain", "decision", "responsible_member_id")
_DOMAIN_ORDER = {domain: index for index, domain in enumerate(Domain)}


def local_today() -> date:
    """Today in Norway: membership periods are calendar days there."""
    return datetime.now(LOCAL_TZ).date()


def is_active(member: GroupMember, on: date | None = None) -> bool:
    """A member on ``on`` (today by default): from ``member_from`` through ``member_until``."""
    day = on or local_today()
    return member.member_from <= day and (member.member_until is None or member.member_until >= day)


def has_ended(member: GroupMember, on: date | None = None) -> bool:
    day = on or local_today()
    return member.member_until is not None and member.member_until < day


def _overlaps(a_from: date, a_until: date | None, b_from: date, b_until: date | None) -> bool:
    return (b_until is None or a_from <= b_until) and (a_until is None or b_from <= a_until)


# --- timeline -----------------------------------------------------------------------------------


def record_system_change(
    session: AsyncSession,
    *,
    actor: str,
    case_id: uuid.UUID,
    action: str,
    entity: str,
    entity_id: object | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> TimelineEntry:
    """A timeline entry for a change made by a service on a person's behalf (no Viewer).

    ``before``/``after`` must already be JSON-safe (use ``audit.snapshot``)."""
    entry = TimelineEntry(
        case_id=case_id,
        actor=actor,
        actor_role=SERVICE_ACTOR_ROLE,
        actor_organization_id=None,
        action=action,
        entity=entity,
        entity_id=str(entity_id) if entity_id is not None else None,
        before=before,
        after=after,
        correlation_id=current_correlation_id(),
    )
    session.add(entry)
    return entry


def _record(
    session: AsyncSession,
    actor: Viewer | str,
    *,
    case_id: uuid.UUID,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    if isinstance(actor, Viewer):
        audit.record_change(
            session,
            actor,
            case_id=case_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=before,
            after=after,
        )
    else:
        record_system_change(
            session,
            actor=actor,
            case_id=case_id,
            action=action,
            entity=entity,
            entity_id=entity_id,
            before=before,
            after=after,
        )


def _subject(actor: Viewer | str) -> str:
    return actor.subject if isinstance(actor, Viewer) else actor


# --- common checks ------------------------------------------------------------------------------


def _check_open(case: Case) -> None:
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed("A closed case cannot change")


async def _lock_case(session: AsyncSession, case_id: uuid.UUID) -> None:
    """Serialize changes to one case's group so two requests cannot both add an inmate member."""
    await session.execute(select(col(Case.id)).where(col(Case.id) == case_id).with_for_update())


async def _members_by_id(
    session: AsyncSession, case_id: uuid.UUID, member_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, GroupMember]:
    ids = set(member_ids)
    if not ids:
        return {}
    rows = await session.execute(
        select(GroupMember).where(col(GroupMember.case_id) == case_id, col(GroupMember.id).in_(ids))
    )
    return {member.id: member for member in rows.scalars()}


# --- members ------------------------------------------------------------------------------------


async def _check_organization(
    session: AsyncSession, organization_id: uuid.UUID | None, role: GroupRole
) -> None:
    if organization_id is None:
        return
    if role is GroupRole.INMATE:
        raise InvalidMember(
            "The inmate is a member in person, without an organization", field="organization_id"
        )
    if await organizations.get(session, organization_id) is None:
        raise UnknownOrganization(
            f"No organization {organization_id} in the directory", field="organization_id"
        )


async def _check_member_rules(session: AsyncSession, member: GroupMember) -> None:
    """The group's invariants for ``member`` as it would be saved."""
    if member.member_until is not None and member.member_until < member.member_from:
        raise InvalidMember("member_until cannot be before member_from", field="member_until")
    if member.is_chair and member.role is not GroupRole.INMATE:
        raise InvalidMember("Only the inmate chairs the responsibility group", field="is_chair")
    if member.role is not GroupRole.INMATE:
        return
    others = await session.execute(
        select(GroupMember).where(
            col(GroupMember.case_id) == member.case_id,
            col(GroupMember.role) == GroupRole.INMATE,
            col(GroupMember.id) != member.id,
        )
    )
    for other in others.scalars():
        if _overlaps(member.member_from, member.member_until, other.member_from, other.member_until):
            raise InvalidMember(
                "The group already has an inmate member for that period; end that membership first",
                field="role",
                existing_member_id=str(other.id),
            )


async def _has_active_chair(session: AsyncSession, case_id: uuid.UUID, today: date) -> bool:
    row = await session.execute(
        select(col(GroupMember.id))
        .where(
            col(GroupMember.case_id) == case_id,
            col(GroupMember.is_chair).is_(True),
            or_(col(GroupMember.member_until).is_(None), col(GroupMember.member_until) >= today),
        )
        .limit(1)
    )
    return row.first() is not None


def _emit_group_changed(session: AsyncSession, case: Case, member: GroupMember, *, change: str) -> None:
    """Only references and flags: never the member's name or contact details."""
    events.emit(
        session,
        contracts.CaseGroupChanged,
        case,
        member_id=str(member.id),
        role=member.role.value,
        organization_id=str(member.organization_id) if member.organization_id else None,
        post_release_contact=member.post_release_contact,
        active=is_active(member),
        change=change,
    )


async def _add_member(
    session: AsyncSession, *, actor: Viewer | str, case: Case, data: MemberCreate
) -> GroupMember:
    _check_open(case)
    await _lock_case(session, case.id)
    await _check_organization(session, data.organization_id, data.role)
    today = local_today()
    member = GroupMember(
        case_id=case.id,
        organization_id=data.organization_id,
        person_name=data.person_name,
        role=data.role,
        is_chair=bool(data.is_chair),
        member_from=data.member_from or today,
        member_until=data.member_until,
        post_release_contact=data.post_release_contact,
        contact_phone=data.contact_phone,
        contact_email=data.contact_email,
        added_by=_subject(actor),
    )
    if data.role is GroupRole.INMATE and data.is_chair is None:
        member.is_chair = not await _has_active_chair(session, case.id, today)
    await _check_member_rules(session, member)
    session.add(member)
    await session.flush()
    _record(
        session,
        actor,
        case_id=case.id,
        action="group.member_added",
        entity="group_member",
        entity_id=member.id,
        after=audit.snapshot(member, MEMBER_FIELDS),
    )
    if member.post_release_contact:
        _emit_group_changed(session, case, member, change="added")
    await session.flush()
    return member


async def add_member(session: AsyncSession, *, viewer: Viewer, case: Case, data: MemberCreate) -> GroupMember:
    """Add a member to the case's group (the caller checked the viewer may change the case)."""
    return await _add_member(session, actor=viewer, case=case, data=data)


async def add_member_from_receipt(
    session: AsyncSession,
    *,
    viewer_subject: str,
    case: Case,
    organization_id: uuid.UUID | None,
    person_name: str,
    role: GroupRole,
    contact_phone: str | None,
    contact_email: str | None,
    post_release_contact: bool = True,
) -> GroupMember:
    """Add the contact an organization named when it acknowledged a case (no Viewer needed).

    The timeline names ``viewer_subject`` as actor with the role "service"."""
    try:
        data = MemberCreate(
            organization_id=organization_id,
            person_name=person_name,
            role=role,
            post_release_contact=post_release_contact,
            contact_phone=contact_phone,
            contact_email=contact_email,
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise InvalidMember(f"{field}: {error['msg']}", field=field) from exc
    return await _add_member(session, actor=viewer_subject, case=case, data=data)


async def update_member(
    session: AsyncSession, *, viewer: Viewer, case: Case, member: GroupMember, data: MemberUpdate
) -> GroupMember:
    """Change a member, e.g. end the membership or toggle post-release contact (the caller checked If-Match)."""
    _check_open(case)
    await _lock_case(session, case.id)
    changes = data.model_dump(exclude_unset=True)
    if "organization_id" in changes or "role" in changes:
        await _check_organization(
            session, changes.get("organization_id", member.organization_id), changes.get("role", member.role)
        )
    before = audit.snapshot(member, MEMBER_FIELDS)
    for name, value in changes.items():
        setattr(member, name, value)
    after = audit.snapshot(member, MEMBER_FIELDS)
    old, new = audit.changed(before, after)
    if not new:
        return member
    await _check_member_rules(session, member)
    member.updated_at = utcnow()
    ended = "member_until" in new and member.member_until is not None
    _record(
        session,
        viewer,
        case_id=case.id,
        action="group.member_ended" if ended else "group.member_changed",
        entity="group_member",
        entity_id=member.id,
        before=old,
        after=new,
    )
    if before["post_release_contact"] or member.post_release_contact:
        _emit_group_changed(session, case, member, change="ended" if ended else "changed")
    await session.flush()
    return member


async def list_members(session: AsyncSession, case: Case) -> list[GroupMember]:
    rows = await session.execute(
        select(GroupMember)
        .where(col(GroupMember.case_id) == case.id)
        .order_by(col(GroupMember.member_from), col(GroupMember.added_at), col(GroupMember.id))
    )
    return list(rows.scalars())


async def get_member(session: AsyncSession, case: Case, member_id: uuid.UUID) -> GroupMember:
    member = await session.get(GroupMember, member_id)
    if member is None or member.case_id != case.id:
        raise MemberNotFound(f"No member {member_id} in this case's group")
    return member


# --- what a viewer may see ----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupScope:
    """What of a group a viewer may read: consent-gated roles see the domains their consent covers,
    and members in a health role only when that includes a health domain."""

    domains: frozenset[Domain]
    health_visible: bool

    def shows_member(self, member: GroupMember) -> bool:
        return self.health_visible or member.role not in HEALTH_ROLES

    def shows_domain(self, domain: Domain) -> bool:
        return domain in self.domains


async def scope_for(session: AsyncSession, viewer: Viewer, case: Case) -> GroupScope:
    domains = await visible_domains(session, viewer, case)
    return GroupScope(domains=domains, health_visible=bool(domains & HEALTH_DOMAINS))


# --- meetings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeetingDetails:
    meeting: Meeting
    participants: list[tuple[MeetingParticipant, GroupMember]]
    decisions: list[MeetingDecision]

    @property
    def attendance_recorded(self) -> bool:
        return any(participant.attended is not None for participant, _ in self.participants)

    @property
    def absent_without_apologies(self) -> list[uuid.UUID]:
        """Members who neither attended nor sent apologies, once attendance is recorded."""
        if not self.attendance_recorded:
            return []
        return [
            participant.member_id
            for participant, _ in self.participants
            if not participant.apologies
            and (participant.attended is False or (participant.invited and participant.attended is None))
        ]


async def call_meeting(session: AsyncSession, *, viewer: Viewer, case: Case, data: MeetingCreate) -> Meeting:
    """Call a meeting of the group and invite members of it."""
    _check_open(case)
    invited = list(dict.fromkeys(data.invited_member_ids))
    members = await _members_by_id(session, case.id, invited)
    meeting_day = data.starts_at.astimezone(LOCAL_TZ).date()
    for member_id in invited:
        member = members.get(member_id)
        if member is None:
            raise InvalidMeeting(
                f"{member_id} is not a member of this case's group",
                field="invited_member_ids",
                member_id=str(member_id),
            )
        if has_ended(member, meeting_day):
            raise InvalidMeeting(
                f"The membership of {member_id} ends before the meeting",
                field="invited_member_ids",
                member_id=str(member_id),
            )
    meeting = Meeting(
        case_id=case.id,
        starts_at=data.starts_at,
        duration_minutes=data.duration_minutes,
        place=data.place,
        video_link=data.video_link,
        minutes_reference=data.minutes_reference,
        called_by=viewer.subject,
    )
    session.add(meeting)
    await session.flush()
    session.add_all(
        MeetingParticipant(meeting_id=meeting.id, member_id=member_id, invited=True) for member_id in invited
    )
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="meeting.called",
        entity="meeting",
        entity_id=meeting.id,
        after={**audit.snapshot(meeting, MEETING_FIELDS), "invited_member_ids": [str(i) for i in invited]},
    )
    await session.flush()
    return meeting


async def get_meeting(session: AsyncSession, case: Case, meeting_id: uuid.UUID) -> Meeting:
    meeting = await session.get(Meeting, meeting_id)
    if meeting is None or meeting.case_id != case.id:
        raise MeetingNotFound(f"No meeting {meeting_id} in this case")
    return meeting


async def details(session: AsyncSession, meetings: list[Meeting]) -> list[MeetingDetails]:
    """Participants (with their members) and decisions for each meeting, in two queries."""
    ids = [meeting.id for meeting in meetings]
    if not ids:
        return []
    participant_rows = await session.execute(
        select(MeetingParticipant, GroupMember)
        .join(GroupMember, col(GroupMember.id) == col(MeetingParticipant.member_id))
        .where(col(MeetingParticipant.meeting_id).in_(ids))
        .order_by(col(GroupMember.member_from), col(GroupMember.added_at), col(GroupMember.id))
    )
    participants: dict[uuid.UUID, list[tuple[MeetingParticipant, GroupMember]]] = {i: [] for i in ids}
    for row in participant_rows.all():
        participants[row[0].meeting_id].append((row[0], row[1]))
    decision_rows = await session.execute(
        select(MeetingDecision)
        .where(col(MeetingDecision.meeting_id).in_(ids))
        .order_by(col(MeetingDecision.created_at), col(MeetingDecision.id))
    )
    decisions: dict[uuid.UUID, list[MeetingDecision]] = {i: [] for i in ids}
    for decision in decision_rows.scalars():
        decisions[decision.meeting_id].append(decision)
    return [
        MeetingDetails(
            meeting=meeting,
            participants=participants[meeting.id],
            decisions=sorted(decisions[meeting.id], key=lambda d: _DOMAIN_ORDER[d.domain]),
        )
        for meeting in meetings
    ]


async def list_meetings_page(
    session: AsyncSession, case: Case, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[Meeting], str | None]:
    """The case's meetings, latest first, keyset-paginated on (starts_at, id)."""
    conditions = [col(Meeting.case_id) == case.id]
    if cursor is not None:
        starts_at, last = decode_cursor(cursor, aware_datetime, as_uuid)
        conditions.append(
            or_(
                col(Meeting.starts_at) < starts_at,
                and_(col(Meeting.starts_at) == starts_at, col(Meeting.id) < last),
            )
        )
    rows = await session.execute(
        select(Meeting)
        .where(*conditions)
        .order_by(col(Meeting.starts_at).desc(), col(Meeting.id).desc())
        .limit(limit + 1)
    )
    meetings = list(rows.scalars())
    next_cursor = None
    if len(meetings) > limit:
        last_meeting = meetings[limit - 1]
        next_cursor = encode_cursor([last_meeting.starts_at.isoformat(), str(last_meeting.id)])
    return meetings[:limit], next_cursor


def _attendance_snapshot(participants: Iterable[MeetingParticipant]) -> dict[str, Any]:
    return {
        str(p.member_id): {
            "invited": p.invited,
            "attended": p.attended,
            "apologies": p.apologies,
            "note": p.note,
        }
        for p in participants
    }


async def record_attendance(
    session: AsyncSession, *, viewer: Viewer, case: Case, meeting: Meeting, items: list[AttendanceItem]
) -> Meeting:
    """Replace the meeting's attendance record (the caller checked If-Match).

    Members left out count as not recorded; a member who was not invited may be recorded as present.
    Before the meeting starts only apologies can be recorded."""
    _check_open(case)
    now = utcnow()
    if meeting.starts_at > now and any(item.attended is not None for item in items):
        raise MeetingNotStarted(
            "Attendance can be recorded once the meeting has started; before that only apologies",
            starts_at=meeting.starts_at.isoformat(),
        )
    members = await _members_by_id(session, case.id, (item.member_id for item in items))
    for item in items:
        if item.member_id not in members:
            raise InvalidMeeting(
                f"{item.member_id} is not a member of this case's group",
                field="attendance",
                member_id=str(item.member_id),
            )
    existing = {
        participant.member_id: participant
        for participant in (
            await session.execute(
                select(MeetingParticipant).where(col(MeetingParticipant.meeting_id) == meeting.id)
            )
        ).scalars()
    }
    before = _attendance_snapshot(existing.values())
    listed = {item.member_id: item for item in items}
    kept: list[MeetingParticipant] = []
    dropped: list[MeetingParticipant] = []
    for member_id, participant in existing.items():
        if member_id in listed:
            continue
        if participant.invited:
            participant.attended, participant.apologies, participant.note = None, False, None
            kept.append(participant)
        else:
            dropped.append(participant)
    for member_id, item in listed.items():
        participant = existing.get(member_id) or MeetingParticipant(
            meeting_id=meeting.id, member_id=member_id, invited=False
        )
        participant.attended, participant.apologies, participant.note = (
            item.attended,
            item.apologies,
            item.note,
        )
        if member_id not in existing:
            session.add(participant)
        kept.append(participant)
    old, new = audit.changed(before, _attendance_snapshot(kept))
    removed = {key: value for key, value in before.items() if key not in {str(p.member_id) for p in kept}}
    if not new and not removed:
        return meeting
    for participant in dropped:
        await session.delete(participant)
    meeting.updated_at = now  # bumps the meeting's version, so its ETag changes
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="meeting.attendance_recorded",
        entity="meeting",
        entity_id=meeting.id,
        before={**old, **removed},
        after=new,
    )
    await session.flush()
    return meeting


async def add_decision(
    session: AsyncSession, *, viewer: Viewer, case: Case, meeting: Meeting, data: DecisionCreate
) -> MeetingDecision:
    """Record a decision the group made at a meeting, for one domain."""
    _check_open(case)
    if meeting.starts_at > utcnow():
        raise MeetingNotStarted(
            "Decisions are recorded for a meeting that has started", starts_at=meeting.starts_at.isoformat()
        )
    if data.responsible_member_id is not None and not await _members_by_id(
        session, case.id, [data.responsible_member_id]
    ):
        raise InvalidMeeting(
            f"{data.responsible_member_id} is not a member of this case's group",
            field="responsible_member_id",
            member_id=str(data.responsible_member_id),
        )
    decision = MeetingDecision(
        meeting_id=meeting.id,
        domain=data.domain,
        decision=data.decision,
        responsible_member_id=data.responsible_member_id,
        created_by=viewer.subject,
    )
    session.add(decision)
    await session.flush()
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="meeting.decision_recorded",
        entity="meeting_decision",
        entity_id=decision.id,
        after=audit.snapshot(decision, DECISION_FIELDS),
    )
    await session.flush()
    return decision
