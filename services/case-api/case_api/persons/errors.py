from shared.errors import Conflict, NotFound


class PersonExists(Conflict):
    title = "Person already registered"


class PersonNotFound(NotFound):
    title = "Person not found"
