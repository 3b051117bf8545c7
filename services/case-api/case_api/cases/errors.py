import uuid

from shared.errors import Conflict, Forbidden, UnprocessableEntity


class IllegalTransition(Conflict):
    title = "Illegal status transition"


class CaseClosed(Conflict):
    title = "Case is closed"


class OpenCaseExists(Conflict):
    """A person has one open case at a time: answers ``existing_id``, the open one."""

    title = "Person already has an open case"

    def __init__(self, *, person_id: uuid.UUID, case_id: uuid.UUID) -> None:
        super().__init__(
            f"Person {person_id} already has an open case, {case_id}. A person has one open case at a "
            "time: transfer that case to move it to another unit, or close it before opening a new one",
            existing_id=str(case_id),
        )
        self.person_id = person_id
        self.case_id = case_id


class NotInCustody(Conflict):
    title = "Case is no longer in custody"


class UnitOutsideScope(Forbidden):
    title = "Unit outside your scope"


class InvalidCaseChange(UnprocessableEntity):
    title = "Invalid case change"
