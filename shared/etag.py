"""ETag / If-Match for optimistic concurrency on updates."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header

from shared.errors import PreconditionFailed, PreconditionRequired


def etag_for(resource: str, version: int | str) -> str:
    """A strong ETag: If-Match compares strongly (RFC 9110 13.1.1), so it must not be weak."""
    return f'"{resource}-{version}"'


def _quoted(value: str) -> bool:
    """An entity tag as RFC 9110 writes it: ``"..."`` or ``W/"..."``."""
    tag = value[2:] if value.startswith("W/") else value
    return len(tag) >= 2 and tag.startswith('"') and tag.endswith('"')


def _if_match(
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description=(
                "The ETag you last read, quotes included. A change without it is 428 (unless the "
                "operation says it is optional), one with an older ETag is 412."
            ),
            examples=['"case-3"'],
        ),
    ] = None,
) -> str | None:
    return if_match


# The ``If-Match`` header as a declared parameter, so the OpenAPI documents name it.
IfMatch = Annotated[str | None, Depends(_if_match)]


def check_if_match(header: str | None, current: str, *, required: bool = True) -> None:
    """412 when ``If-Match`` names another version; 428 when it is required and missing."""
    if header is None:
        if required:
            raise PreconditionRequired("Send If-Match with the ETag you last read")
        return
    candidates = {value.strip() for value in header.split(",")}
    if "*" in candidates or current in candidates:
        return
    if any(not _quoted(value) for value in candidates):
        raise PreconditionFailed(
            'If-Match must hold the ETag exactly as it was sent, quotes included (for example "case-3")',
            current_etag=current,
        )
    raise PreconditionFailed("The resource changed since you read it; fetch it again", current_etag=current)
