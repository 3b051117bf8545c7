from shared.errors import NotFound, UnprocessableEntity


class DomainNotFound(NotFound):
    title = "Domain not found"


class ActionNotFound(NotFound):
    title = "Action not found"


class InvalidDomainChange(UnprocessableEntity):
    title = "Invalid domain change"
