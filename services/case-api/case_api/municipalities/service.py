"""The municipality responsible for a case after release. Flush, never commit."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from case_api import events
from case_api.access import Viewer
from case_api.audit import service as audit
from case_api.cases.errors import CaseClosed
from case_api.cases.models import Case, CaseStatus, MunicipalityStatus
from case_api.municipalities.errors import InvalidMunicipalityStatus, UnknownKommunenummer
from case_api.municipalities.schemas import MunicipalityChange
from shared.contracts import events as contracts
from shared.db import utcnow
from shared.municipalities import VALID_FROM, is_current_kommunenummer

NUMBER_FIELDS = ("registered_kommunenummer", "intended_kommunenummer", "responsible_kommunenummer")
# Case column -> request field.
COLUMNS = {
    "registered_kommunenummer": "registered_kommunenummer",
    "intended_kommunenummer": "intended_kommunenummer",
    "responsible_kommunenummer": "responsible_kommunenummer",
    "municipality_status": "status",
    "municipality_note": "note",
}
NEEDS_RESPONSIBLE = frozenset({MunicipalityStatus.PROPOSED, MunicipalityStatus.CONFIRMED})


def validate(data: MunicipalityChange) -> None:
    """422 naming the field for an unknown number or a status that contradicts the rest."""
    for field in NUMBER_FIELDS:
        number = getattr(data, field)
        if number is not None and not is_current_kommunenummer(number):
            raise UnknownKommunenummer(
                f"{number} is not a current municipality number (classification valid from "
                f"{VALID_FROM.isoformat()})",
                field=field,
                value=number,
            )
    if data.status in NEEDS_RESPONSIBLE and data.responsible_kommunenummer is None:
        raise InvalidMunicipalityStatus(
            f"A {data.status.value} municipality needs responsible_kommunenummer",
            field="responsible_kommunenummer",
            municipality_status=data.status.value,
        )
    if data.status is MunicipalityStatus.KOMMUNELOS and data.responsible_kommunenummer is not None:
        raise InvalidMunicipalityStatus(
            "kommunelos means no municipality is responsible; leave responsible_kommunenummer empty",
            field="responsible_kommunenummer",
            municipality_status=data.status.value,
        )
    if data.status is MunicipalityStatus.DISPUTED and data.note is None:
        raise InvalidMunicipalityStatus(
            "A disputed responsibility needs a note saying what is disputed",
            field="note",
            municipality_status=data.status.value,
        )


async def set_municipality(
    session: AsyncSession, *, viewer: Viewer, case: Case, data: MunicipalityChange
) -> Case:
    """Replace the case's municipalities and status (the caller checked If-Match)."""
    if case.status is CaseStatus.CLOSED:
        raise CaseClosed("A closed case cannot change")
    validate(data)
    before = audit.snapshot(case, COLUMNS)
    old_responsible, old_status = case.responsible_kommunenummer, case.municipality_status
    for column, field in COLUMNS.items():
        setattr(case, column, getattr(data, field))
    old, new = audit.changed(before, audit.snapshot(case, COLUMNS))
    if not new:
        return case
    case.updated_at = utcnow()
    audit.record_change(
        session,
        viewer,
        case_id=case.id,
        action="case.municipality_changed",
        entity="case",
        entity_id=case.id,
        before=old,
        after=new,
    )
    if old_responsible != case.responsible_kommunenummer or old_status is not case.municipality_status:
        events.emit(
            session,
            contracts.CaseMunicipalityChanged,
            case,
            old_responsible_kommunenummer=old_responsible,
            new_responsible_kommunenummer=case.responsible_kommunenummer,
            old_municipality_status=old_status.value,
            new_municipality_status=case.municipality_status.value,
        )
    await session.flush()
    return case
