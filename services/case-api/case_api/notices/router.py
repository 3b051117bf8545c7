"""The facts notify-worker puts in a notice, and the detail view a notice links to."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from case_api.access import Viewer, ViewerDep, load_case_unscoped, require_acting_organization
from case_api.audit import service as audit
from case_api.cases.models import Case
from case_api.notices import service
from case_api.notices.agreements import AgreementApi, AgreementApiUnavailable
from case_api.notices.errors import NoNoticeDetail, RulesUnavailable, ViewOrganizationRequired
from case_api.notices.schemas import NoticeDetail, NoticeFacts, NoticeFactsList
from case_api.organizations import service as organizations
from case_api.organizations.models import OrganizationRef
from case_api.organizations.service import UnknownOrganization
from shared.auth import RECIPIENT_ROLES, Role
from shared.db import SessionDep
from shared.errors import Forbidden, problem_responses

# No prefix: the batch question is not about one case.
router = APIRouter(tags=["notices"])

# Roles that may read any recipient's view for support, naming it with ?organization_id=.
SUPPORT_ROLES = frozenset({Role.ADMIN, Role.AUDITOR})
# One answer for an unknown case, a caller that is no recipient and one without covered domains.
NO_DETAIL = "No notice detail for this case that you may see"
# Cases one batch question may name: a dispatcher round's cases, and a URL of ~8 kB at most.
MAX_FACTS_CASES = 200


@router.get(
    "/cases/{case_id}/notice-facts",
    response_model=NoticeFacts,
    responses=problem_responses(401, 403, 404),
    summary="What a notice says about the case (notify-worker only)",
)
async def get_notice_facts(case_id: uuid.UUID, session: SessionDep, viewer: ViewerDep) -> NoticeFacts:
    """The effective release date, its certainty and the coordinator's contact, for the notices
    notify-worker sends. Only the `service` role may ask, about any case.

    Not written to the access log: the answer holds no personal data of the inmate, only a date and
    a member of staff's work contact, and every notice built from it is recorded by notify-worker.
    What a recipient then reads through the notice's detail link is logged there."""
    if viewer.role is not Role.SERVICE:
        raise Forbidden(f"Role {viewer.role.value!r} may not read notice facts")
    case = await load_case_unscoped(session, case_id)
    return await service.notice_facts(session, case)


@router.get(
    "/notice-facts",
    response_model=NoticeFactsList,
    responses=problem_responses(401, 403, 422),
    summary="What notices say about many cases at once (notify-worker only)",
)
async def list_notice_facts(
    session: SessionDep,
    viewer: ViewerDep,
    case_id: Annotated[
        list[uuid.UUID],
        Query(
            min_length=1,
            max_length=MAX_FACTS_CASES,
            description=f"The cases, repeated (`?case_id=…&case_id=…`), 1 to {MAX_FACTS_CASES}.",
        ),
    ],
) -> NoticeFactsList:
    """``GET /cases/{id}/notice-facts`` for up to 200 cases in one request, answered with a fixed
    number of queries: notify-worker asks once per round instead of once per case. Cases case-api
    does not know are left out of ``items`` (the worker treats them as a 404 of the single
    question). The ids are case ids, never personal data. Only the `service` role may ask; not
    written to the access log, for the reasons the single question gives."""
    if viewer.role is not Role.SERVICE:
        raise Forbidden(f"Role {viewer.role.value!r} may not read notice facts")
    return NoticeFactsList(items=await service.notice_facts_many(session, case_id))


async def _whose_view(
    session: AsyncSession, viewer: Viewer, organization_id: uuid.UUID | None
) -> OrganizationRef:
    """The recipient organization whose view is asked for: the caller's own, or for support roles
    the one named in ``organization_id``."""
    if viewer.role in SUPPORT_ROLES:
        if organization_id is None:
            raise ViewOrganizationRequired(
                "Say whose view to read with organization_id", field="organization_id"
            )
        named = await organizations.get(session, organization_id)
        if named is None:
            raise UnknownOrganization(
                f"No organization {organization_id} in the directory", field="organization_id"
            )
        return named
    if viewer.role not in RECIPIENT_ROLES:
        raise Forbidden(f"Role {viewer.role.value!r} does not receive notices")
    if organization_id is not None and organization_id != viewer.organization_id:
        raise Forbidden("A recipient reads its own view only")
    # A token without the organization its role acts for is told so (403), as on the case routes.
    require_acting_organization(viewer)
    assert viewer.organization is not None
    return viewer.organization


@router.get(
    "/cases/{case_id}/notice-detail",
    response_model=NoticeDetail,
    response_model_exclude_unset=True,
    responses=problem_responses(401, 403, 404, 422, 503),
    summary="The case as a notice recipient may see it",
)
async def get_notice_detail(
    case_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    organization_id: Annotated[
        uuid.UUID | None,
        Query(description="Whose view: required for admin and auditor; a recipient may name only itself."),
    ] = None,
) -> NoticeDetail:
    """The link in a webhook notice. Fetch it with the recipient's own token (roles `municipality`,
    `nav`, `health`; `admin` and `auditor` for support with `organization_id`).

    agreement-api is asked which notice rules apply to the case now; the caller's organization must
    be a recipient of one of them. Its data-sharing profile says which facts and which domains are
    released, and only the domains an active consent or legal basis covers for the organization
    are shown. A caller that is no recipient, or whose consent covers none of its domains, gets 404
    as for an unknown case. Facts the profile does not release are left out of the answer. Never
    the inmate's name or identity number. Every answer is written to the access log. 503 with
    `Retry-After` when agreement-api cannot be asked."""
    organization = await _whose_view(session, viewer, organization_id)
    case = await session.get(Case, case_id)
    if case is None:
        raise NoNoticeDetail(NO_DETAIL)
    agreements: AgreementApi = request.app.state.agreement_api
    try:
        resolution = await agreements.resolve(
            case.current_unit_id, case.responsible_kommunenummer, case.nav_office_id
        )
    except AgreementApiUnavailable as exc:
        raise RulesUnavailable(f"The notice rules could not be read from agreement-api: {exc}") from exc
    grant = service.grant_for(resolution, case, organization.id)
    if grant is None:
        raise NoNoticeDetail(NO_DETAIL)
    domains = await service.covered_domains(session, case, organization, grant.domains)
    if not domains:
        raise NoNoticeDetail(NO_DETAIL)
    detail = await service.notice_detail(session, case, organization.id, grant, domains)
    await audit.record_access(session, viewer, reads=[(case.person_id, case.id)], what="case.notice_detail")
    return detail
