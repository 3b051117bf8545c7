from shared.errors import UnprocessableEntity


class UnknownKommunenummer(UnprocessableEntity):
    title = "Unknown municipality number"


class InvalidMunicipalityStatus(UnprocessableEntity):
    title = "Invalid municipality status"
