from shared.errors import Conflict, UnprocessableEntity


class InvalidReleaseDate(UnprocessableEntity):
    title = "Invalid release date"


class ReleaseDatesClosed(Conflict):
    title = "Release dates can no longer change"
