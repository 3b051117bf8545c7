from shared.errors import Conflict, NotFound, UnprocessableEntity


class ConsentNotFound(NotFound):
    title = "Consent not found"


class ConsentAlreadyWithdrawn(Conflict):
    title = "Consent already withdrawn"


class InvalidConsent(UnprocessableEntity):
    title = "Invalid consent"
