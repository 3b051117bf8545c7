from __future__ import annotations

import uuid

from shared.errors import Conflict, NotFound


class PersonExists(Conflict):
    """A second registration: answers ``existing_id`` so the caller opens a case for that person."""

    title = "Person already registered"

    def __init__(self, detail: str, *, person_id: uuid.UUID) -> None:
        super().__init__(detail, existing_id=str(person_id))
        self.person_id = person_id


class PersonNotFound(NotFound):
    title = "Person not found"
