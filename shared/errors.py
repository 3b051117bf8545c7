"""RFC 9457 problem details for every error a service returns.

Domain code raises a :class:`ProblemError` subclass that carries its HTTP status; the handlers
installed by :func:`install_problem_handlers` render it, and every other error (validation,
routing, unexpected exceptions) as ``application/problem+json``. Bodies never contain stack
traces, SQL or parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.context import current_correlation_id
from shared.identifiers import mask_identity_numbers

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://tilbake.no/problems/"


class FieldError(BaseModel):
    """One invalid input: where it is and what is wrong."""

    field: str = Field(examples=["body.release_date"])
    message: str = Field(examples=["Input should be a valid date"])
    type: str = Field(examples=["date_parsing"])


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[PROBLEM_TYPE_BASE + "not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(None, examples=["No case with that id"])
    instance: str | None = Field(None, examples=["/api/v1/cases/0f4e..."])
    correlation_id: str | None = None
    errors: list[FieldError] | None = None
    # Extension members some problems carry; others may appear (the model allows extra members).
    field: str | None = Field(None, description="The input the problem is about.", examples=["date"])
    invalid_param: str | None = Field(
        None, description="The parameter or header refused with 400.", examples=["cursor"]
    )
    existing_id: str | None = Field(
        None, description="409: the resource that already exists; use it instead of creating another."
    )
    current_etag: str | None = Field(
        None, description="412: the resource's current ETag.", examples=['"case-4"']
    )
    current_status: str | None = Field(None, description="409: the status that forbids the change.")
    current_state: str | None = Field(None, description="409: the state that forbids the change.")
    allowed_next: list[str] | None = Field(None, description="409: the statuses a change may lead to.")
    reason: str | None = Field(None, description="A machine-readable reason for the refusal.")
    retryable: bool | None = Field(None, description="Whether the same request may succeed later.")
    retry_after_seconds: int | None = Field(None, description="How long to wait before retrying.")


class ProblemError(Exception):
    """Base for errors that map to one HTTP status and problem type."""

    status: ClassVar[int] = 500
    type_slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions


class BadRequest(ProblemError):
    status, type_slug, title = 400, "bad-request", "Bad Request"


class Unauthorized(ProblemError):
    status, type_slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str | None = None, **extensions: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extensions)


class Forbidden(ProblemError):
    status, type_slug, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, type_slug, title = 404, "not-found", "Not Found"


class Conflict(ProblemError):
    status, type_slug, title = 409, "conflict", "Conflict"


class PreconditionFailed(ProblemError):
    status, type_slug, title = 412, "precondition-failed", "Precondition Failed"


class PreconditionRequired(ProblemError):
    status, type_slug, title = 428, "precondition-required", "Precondition Required"


class UnsupportedMediaType(ProblemError):
    status, type_slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


class UnprocessableEntity(ProblemError):
    """Well-formed input that breaks a domain rule (e.g. contradicting dates)."""

    status, type_slug, title = 422, "unprocessable", "Unprocessable Content"


class ServiceUnavailable(ProblemError):
    status, type_slug, title = 503, "unavailable", "Service Unavailable"


_HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

_SLUG_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    415: "unsupported-media-type",
    422: "validation-error",
    428: "precondition-required",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
}


def problem_instance(path: str) -> str:
    """The request path as a problem's ``instance``, with anything like an identity number masked:
    a wrong URL must not be repeated back, or into a client's logs, with the number in it."""
    return mask_identity_numbers(path)


def problem_response(
    request: Request,
    *,
    status: int,
    title: str | None = None,
    detail: str | None = None,
    type_slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    slug = type_slug or _SLUG_BY_STATUS.get(status, "error")
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "instance": problem_instance(request.url.path),
    }
    if detail:
        body["detail"] = detail
    if correlation_id := current_correlation_id():
        body["correlation_id"] = correlation_id
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    # A JSON key is the caller's text: one made of an identity number must not come back.
    return mask_identity_numbers(".".join(str(part) for part in loc))


def render_problem(request: Request, exc: ProblemError) -> JSONResponse:
    """The response for ``exc``, for an endpoint that answers an error without raising it: its
    request's transaction then commits (an access-log row, say) instead of rolling back."""
    return problem_response(
        request,
        status=exc.status,
        title=exc.title,
        detail=exc.detail,
        type_slug=exc.type_slug,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return render_problem(request, exc)


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail == HTTPStatus(exc.status_code).phrase:
        detail = None
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return problem_response(request, status=exc.status_code, detail=detail, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route answers on the request's path: Starlette names only the first
    route's when several routes share a path (GET and PATCH of one resource)."""
    methods = {
        method
        for method in _HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    }
    return ", ".join(sorted(methods))


def _json_position(document: object, position: object) -> str:
    """'line L, column C' of a character offset in the body that failed to parse."""
    if not isinstance(document, str) or not isinstance(position, int):
        return "an unknown position"
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    return f"line {line}, column {column}"


def _validation_error(err: Any, body: object) -> dict[str, str]:
    loc = tuple(err.get("loc", ()))
    if err.get("type") == "json_invalid" and len(loc) == 2:
        # The body is not JSON: the offset is a position in the text, not a field.
        reason = str((err.get("ctx") or {}).get("error", "not valid JSON"))
        return {
            "field": "body",
            "message": f"The body is not valid JSON: {reason} at {_json_position(body, loc[1])}",
            "type": "json_invalid",
        }
    return {
        "field": _field_path(loc),
        "message": mask_identity_numbers(err.get("msg", "")),
        "type": err.get("type", ""),
    }


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_validation_error(err, exc.body) for err in exc.errors()]
    return problem_response(
        request,
        status=422,
        title="Validation Error",
        detail=f"{len(errors)} invalid field(s)",
        extensions={"errors": errors},
    )


async def _handle_stale(request: Request, _exc: Exception) -> JSONResponse:
    # Another writer committed between this request's read and its write (version check).
    return problem_response(
        request,
        status=412,
        type_slug="precondition-failed",
        detail="The resource was changed by someone else meanwhile; fetch it again",
    )


async def _handle_integrity(request: Request, _exc: Exception) -> JSONResponse:
    # A constraint caught a race the service's own checks could not see (two concurrent creates).
    # The SQL and its parameters stay in the log, never in the body.
    return problem_response(request, status=409, detail="The change conflicts with existing data")


async def _handle_dbapi(request: Request, exc: Exception) -> JSONResponse:
    # The engine does not ping before each transaction (shared.db.create_engine): a connection the
    # database dropped (a restart) fails its first statement. SQLAlchemy has then discarded the
    # pool's old connections, so the same request again succeeds: say so, with 503 + Retry-After.
    assert isinstance(exc, DBAPIError)
    if not exc.connection_invalidated:
        raise exc
    lost = ServiceUnavailable(
        "The database connection was lost; try again",
        headers={"Retry-After": "1"},
        retryable=True,
        retry_after_seconds=1,
    )
    return await _handle_problem(request, lost)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _handle_problem)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StaleDataError, _handle_stale)
    app.add_exception_handler(IntegrityError, _handle_integrity)
    app.add_exception_handler(DBAPIError, _handle_dbapi)
    # Unexpected exceptions are rendered by shared.logging.RequestContextMiddleware, which
    # still knows the request's correlation id.


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entry declaring problem+json for the given statuses."""
    return {
        status: {
            "model": ProblemDetail,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for status in statuses
    }
