from shared.errors import Conflict, Forbidden, UnprocessableEntity


class IllegalTransition(Conflict):
    title = "Illegal status transition"


class CaseClosed(Conflict):
    title = "Case is closed"


class NotInCustody(Conflict):
    title = "Case is no longer in custody"


class UnitOutsideScope(Forbidden):
    title = "Unit outside your scope"


class InvalidCaseChange(UnprocessableEntity):
    title = "Invalid case change"
