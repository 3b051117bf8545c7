"""Makes a service's OpenAPI document say what its error handlers send.

FastAPI documents every 422 as ``application/json`` with its own ``HTTPValidationError`` and a
``responses=`` model under ``application/json`` too; the handlers in :mod:`shared.errors` answer
every error as ``application/problem+json`` with :class:`shared.errors.ProblemDetail`.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from shared.errors import PROBLEM_MEDIA_TYPE, ProblemDetail

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetail"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
# Inputs that shared code refuses with 400 (shared.pagination, shared.idempotency); FastAPI answers
# 400 too for a body it cannot parse at all (not UTF-8, say).
_BAD_REQUEST_PARAMETERS = {("query", "cursor"), ("header", "idempotency-key")}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": dict(_PROBLEM_REF)}}}


def _ensure_problem_schemas(schema: dict[str, Any]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "ProblemDetail" in components:
        return
    generated = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(generated.pop("$defs", {}))
    components["ProblemDetail"] = generated


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Every error response of every operation as problem+json with the ProblemDetail schema, and
    a 400 on operations taking a body or a parameter that can be refused with 400."""
    _ensure_problem_schemas(schema)
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for code, response in list(responses.items()):
                if not code.isdigit() or int(code) < 400:
                    continue
                content = response.get("content", {})
                if code == "422" or PROBLEM_MEDIA_TYPE in content or not content:
                    description = response.get("description") or HTTPStatus(int(code)).phrase
                    if code == "422" and description == "Validation Error":
                        description = "Unprocessable Content: the request's fields are invalid"
                    responses[code] = _problem(description)
            names = {
                (param.get("in"), str(param.get("name", "")).lower())
                for param in operation.get("parameters", [])
            }
            refusable = names & _BAD_REQUEST_PARAMETERS or "requestBody" in operation
            if refusable and "400" not in responses:
                responses["400"] = _problem(HTTPStatus.BAD_REQUEST.phrase)
            operation["responses"] = dict(sorted(responses.items()))
    components = schema.get("components", {}).get("schemas", {})
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)
    return schema


def install_problem_documentation(app: FastAPI) -> None:
    """Wraps ``app.openapi`` so the document is corrected once, when it is first built."""
    openapi: Callable[[], dict[str, Any]] = app.openapi

    def with_problems() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = openapi()
        if fresh:
            document_problems(schema)
        return schema

    app.openapi = with_problems  # type: ignore[method-assign]
