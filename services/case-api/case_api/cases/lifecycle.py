"""The legal status transitions of a case."""

from __future__ import annotations

from case_api.cases.models import CaseStatus

TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.INTAKE: frozenset({CaseStatus.PLANNING, CaseStatus.CLOSED}),
    # A remand prisoner can be released at no notice: planning -> released is legal.
    CaseStatus.PLANNING: frozenset({CaseStatus.RELEASE_READY, CaseStatus.RELEASED, CaseStatus.CLOSED}),
    CaseStatus.RELEASE_READY: frozenset({CaseStatus.PLANNING, CaseStatus.RELEASED, CaseStatus.CLOSED}),
    CaseStatus.RELEASED: frozenset({CaseStatus.FOLLOW_UP, CaseStatus.CLOSED}),
    CaseStatus.FOLLOW_UP: frozenset({CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
}

# While the person is still inside, the case can move between units.
IN_CUSTODY = frozenset({CaseStatus.INTAKE, CaseStatus.PLANNING, CaseStatus.RELEASE_READY})

# Every status but the one a case ends in: a person has at most one case in these at a time
# (``uq_case_case_person_open``, a unique index over the cases whose status is not closed).
OPEN = frozenset(CaseStatus) - {CaseStatus.CLOSED}


def allowed_next(status: CaseStatus) -> list[str]:
    return sorted(state.value for state in TRANSITIONS[status])
