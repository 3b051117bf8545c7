from shared.errors import UnprocessableEntity


class UnknownOrganization(UnprocessableEntity):
    title = "Unknown organization"
