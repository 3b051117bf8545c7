"""The responsibility group (ansvarsgruppe) of a case: members and meetings."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from case_api.access import ViewerDep, load_case, load_case_for_change
from case_api.audit import service as audit
from case_api.cases.models import Case
from case_api.dependencies import IdempotencyDep
from case_api.group import service
from case_api.group.errors import MemberNotFound
from case_api.group.models import GroupMember, Meeting, MeetingDecision
from case_api.group.schemas import (
    AttendanceUpdate,
    DecisionCreate,
    DecisionRead,
    GroupRead,
    MeetingCreate,
    MeetingRead,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    ParticipantRead,
)
from shared.db import SessionDep
from shared.errors import problem_responses
from shared.etag import IfMatch, check_if_match, etag_for
from shared.openapi import response_headers
from shared.pagination import Page

router = APIRouter(prefix="/cases/{case_id}", tags=["group"])


def member_etag(member: GroupMember) -> str:
    return etag_for(f"group-member-{member.id}", member.version)


def meeting_etag(meeting: Meeting) -> str:
    return etag_for(f"meeting-{meeting.id}", meeting.version)


def to_member_read(member: GroupMember) -> MemberRead:
    return MemberRead(
        id=member.id,
        case_id=member.case_id,
        organization_id=member.organization_id,
        person_name=member.person_name,
        role=member.role,
        is_chair=member.is_chair,
        member_from=member.member_from,
        member_until=member.member_until,
        active=service.is_active(member),
        post_release_contact=member.post_release_contact,
        contact_phone=member.contact_phone,
        contact_email=member.contact_email,
        added_by=member.added_by,
        added_at=member.added_at,
        updated_at=member.updated_at,
        version=member.version,
        etag=member_etag(member),
    )


def to_decision_read(decision: MeetingDecision) -> DecisionRead:
    return DecisionRead(
        id=decision.id,
        meeting_id=decision.meeting_id,
        domain=decision.domain,
        decision=decision.decision,
        responsible_member_id=decision.responsible_member_id,
        created_by=decision.created_by,
        created_at=decision.created_at,
    )


def to_meeting_read(details: service.MeetingDetails, scope: service.GroupScope) -> MeetingRead:
    meeting = details.meeting
    shown = {member.id for _, member in details.participants if scope.shows_member(member)}
    return MeetingRead(
        id=meeting.id,
        case_id=meeting.case_id,
        starts_at=meeting.starts_at,
        duration_minutes=meeting.duration_minutes,
        place=meeting.place,
        video_link=meeting.video_link,
        minutes_reference=meeting.minutes_reference,
        called_by=meeting.called_by,
        created_at=meeting.created_at,
        updated_at=meeting.updated_at,
        attendance_recorded=details.attendance_recorded,
        participants=[
            ParticipantRead(
                member_id=member.id,
                role=member.role,
                person_name=member.person_name,
                invited=participant.invited,
                attended=participant.attended,
                apologies=participant.apologies,
                note=participant.note,
            )
            for participant, member in details.participants
            if member.id in shown
        ],
        absent_without_apologies=[i for i in details.absent_without_apologies if i in shown],
        decisions=[to_decision_read(d) for d in details.decisions if scope.shows_domain(d.domain)],
        version=meeting.version,
        etag=meeting_etag(meeting),
    )


async def meeting_response(
    session: SessionDep, viewer: ViewerDep, case: Case, meeting: Meeting
) -> JSONResponse:
    scope = await service.scope_for(session, viewer, case)
    (details,) = await service.details(session, [meeting])
    body = to_meeting_read(details, scope).model_dump(mode="json")
    return JSONResponse(body, headers={"ETag": meeting_etag(meeting)})


# --- members ------------------------------------------------------------------------------------


@router.get(
    "/group", response_model=GroupRead, responses=problem_responses(401, 403, 404), summary="Read the group"
)
async def get_group(case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> GroupRead:
    """The case's responsibility group: active and past members, each with its `etag`."""
    case = await load_case(session, viewer, case_id)
    scope = await service.scope_for(session, viewer, case)
    members = [m for m in await service.list_members(session, case) if scope.shows_member(m)]
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="group")
    chair = next((m.id for m in members if m.is_chair and service.is_active(m)), None)
    return GroupRead(case_id=case.id, chair_member_id=chair, members=[to_member_read(m) for m in members])


@router.post(
    "/group/members",
    response_model=MemberRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 415, 422),
    summary="Add a group member",
)
@response_headers("ETag", "Location")
async def add_member(
    case_id: uuid.UUID,
    body: MemberCreate,
    session: SessionDep,
    viewer: ViewerDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Add a member. The inmate chairs: one inmate member at a time, and only an inmate member may
    chair. Send `Idempotency-Key` to retry safely."""
    case = await load_case_for_change(session, viewer, case_id)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    member = await service.add_member(session, viewer=viewer, case=case, data=body)
    return await idempotency.respond(
        to_member_read(member),
        status_code=201,
        location=f"/api/v1/cases/{case.id}/group/members/{member.id}",
        headers={"ETag": member_etag(member)},
    )


@router.get(
    "/group/members/{member_id}",
    response_model=MemberRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a group member",
)
@response_headers("ETag")
async def get_member(
    case_id: uuid.UUID, member_id: uuid.UUID, session: SessionDep, viewer: ViewerDep
) -> Response:
    """One member, with its `ETag` for later changes."""
    case = await load_case(session, viewer, case_id)
    member = await service.get_member(session, case, member_id)
    if not (await service.scope_for(session, viewer, case)).shows_member(member):
        raise MemberNotFound(f"No member {member_id} in this case's group")
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="group.member")
    body = to_member_read(member).model_dump(mode="json")
    return JSONResponse(body, headers={"ETag": member_etag(member)})


@router.patch(
    "/group/members/{member_id}",
    response_model=MemberRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Change or end a group membership",
)
@response_headers("ETag")
async def update_member(
    case_id: uuid.UUID,
    member_id: uuid.UUID,
    body: MemberUpdate,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """Change a member: end the membership with `member_until`, toggle `post_release_contact`, ...
    Needs `If-Match` with the member's ETag."""
    case = await load_case_for_change(session, viewer, case_id)
    member = await service.get_member(session, case, member_id)
    check_if_match(if_match, member_etag(member))
    member = await service.update_member(session, viewer=viewer, case=case, member=member, data=body)
    body_out = to_member_read(member).model_dump(mode="json")
    return JSONResponse(body_out, headers={"ETag": member_etag(member)})


# --- meetings -----------------------------------------------------------------------------------


@router.post(
    "/meetings",
    response_model=MeetingRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 415, 422),
    summary="Call a group meeting",
)
@response_headers("ETag", "Location")
async def call_meeting(
    case_id: uuid.UUID,
    body: MeetingCreate,
    session: SessionDep,
    viewer: ViewerDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Call a meeting at a place, by video or both, inviting members of this case's group.
    Send `Idempotency-Key` to retry safely."""
    case = await load_case_for_change(session, viewer, case_id)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    meeting = await service.call_meeting(session, viewer=viewer, case=case, data=body)
    scope = await service.scope_for(session, viewer, case)
    (details,) = await service.details(session, [meeting])
    return await idempotency.respond(
        to_meeting_read(details, scope),
        status_code=201,
        location=f"/api/v1/cases/{case.id}/meetings/{meeting.id}",
        headers={"ETag": meeting_etag(meeting)},
    )


@router.get(
    "/meetings",
    response_model=Page[MeetingRead],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List group meetings",
)
async def list_meetings(
    case_id: uuid.UUID,
    session: SessionDep,
    viewer: ViewerDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> Page[MeetingRead]:
    """The case's meetings, latest first, with participants, attendance and decisions."""
    case = await load_case(session, viewer, case_id)
    scope = await service.scope_for(session, viewer, case)
    meetings, next_cursor = await service.list_meetings_page(session, case, limit=limit, cursor=cursor)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="meetings")
    items = [to_meeting_read(details, scope) for details in await service.details(session, meetings)]
    return Page(items=items, next_cursor=next_cursor)


@router.get(
    "/meetings/{meeting_id}",
    response_model=MeetingRead,
    responses=problem_responses(401, 403, 404),
    summary="Read a group meeting",
)
@response_headers("ETag")
async def get_meeting(
    case_id: uuid.UUID, meeting_id: uuid.UUID, session: SessionDep, viewer: ViewerDep
) -> Response:
    """One meeting with participants, `absent_without_apologies` and decisions, and its `ETag`."""
    case = await load_case(session, viewer, case_id)
    meeting = await service.get_meeting(session, case, meeting_id)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="meeting")
    return await meeting_response(session, viewer, case, meeting)


@router.put(
    "/meetings/{meeting_id}/attendance",
    response_model=MeetingRead,
    responses=problem_responses(401, 403, 404, 409, 412, 415, 422, 428),
    summary="Record attendance",
)
@response_headers("ETag")
async def record_attendance(
    case_id: uuid.UUID,
    meeting_id: uuid.UUID,
    body: AttendanceUpdate,
    if_match: IfMatch,
    session: SessionDep,
    viewer: ViewerDep,
) -> Response:
    """Replace who attended and who sent apologies (forfall). Members left out count as not recorded;
    before the meeting starts only apologies can be recorded. Needs `If-Match` with the meeting's ETag."""
    case = await load_case_for_change(session, viewer, case_id)
    meeting = await service.get_meeting(session, case, meeting_id)
    check_if_match(if_match, meeting_etag(meeting))
    meeting = await service.record_attendance(
        session, viewer=viewer, case=case, meeting=meeting, items=body.attendance
    )
    return await meeting_response(session, viewer, case, meeting)


@router.post(
    "/meetings/{meeting_id}/decisions",
    response_model=DecisionRead,
    status_code=201,
    responses=problem_responses(400, 401, 403, 404, 409, 415, 422),
    summary="Record a meeting decision",
)
@response_headers("ETag", "Location")
async def add_decision(
    case_id: uuid.UUID,
    meeting_id: uuid.UUID,
    body: DecisionCreate,
    session: SessionDep,
    viewer: ViewerDep,
    idempotency: IdempotencyDep,
) -> Response:
    """Record a decision the group made for one domain, optionally naming the member responsible.
    Send `Idempotency-Key` to retry safely."""
    case = await load_case_for_change(session, viewer, case_id)
    meeting = await service.get_meeting(session, case, meeting_id)
    if (replayed := await idempotency.replay(body)) is not None:
        return replayed
    decision = await service.add_decision(session, viewer=viewer, case=case, meeting=meeting, data=body)
    return await idempotency.respond(
        to_decision_read(decision),
        status_code=201,
        location=f"/api/v1/cases/{case.id}/meetings/{meeting.id}",
    )
