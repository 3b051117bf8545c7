from shared.errors import Conflict, NotFound, UnprocessableEntity


class OrganizationNotFound(NotFound):
    title = "Organization not found"


class OrganizationExists(Conflict):
    title = "Organization already exists"


class InvalidParent(UnprocessableEntity):
    title = "Invalid parent organization"
