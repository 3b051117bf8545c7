"""Makes a service's OpenAPI document say what its error handlers send.

FastAPI documents every 422 as ``application/json`` with its own ``HTTPValidationError`` and a
``responses=`` model under ``application/json`` too; the handlers in :mod:`shared.errors` answer
every error as ``application/problem+json`` with :class:`shared.errors.ProblemDetail`.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from shared.errors import PROBLEM_MEDIA_TYPE, ProblemDetail

_PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetail"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
# Inputs that shared code refuses with 400 (shared.pagination, shared.idempotency); FastAPI answers
# 400 too for a body it cannot parse at all (not UTF-8, say).
_BAD_REQUEST_PARAMETERS = {("query", "cursor"), ("header", "idempotency-key")}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


# Response headers a success may carry, as OpenAPI header objects.
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "The resource's version; send it as If-Match to change the resource.",
        "required": True,
        "schema": {"type": "string", "examples": ['"case-1"']},
    },
    "Location": {
        "description": "The path of the resource this request created.",
        "required": True,
        "schema": {"type": "string", "examples": ["/api/v1/cases/0f4e8f9c-2f0c-4c8e-9a43-5d0b4c1e7a10"]},
    },
}
_REPLAYED = {
    "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
    "required": False,
    "schema": {"type": "string", "enum": ["true"]},
}
_F = TypeVar("_F", bound=Callable[..., Any])


def response_headers(*names: str) -> Callable[[_F], _F]:
    """Marks a route function whose success response carries these headers (see RESPONSE_HEADERS);
    put it under the route decorator."""
    unknown = set(names) - RESPONSE_HEADERS.keys()
    if unknown:
        raise ValueError(f"undocumented response headers: {sorted(unknown)}")

    def mark(function: _F) -> _F:
        function.response_headers = names  # type: ignore[attr-defined]
        return function

    return mark


def document_headers(app: FastAPI, schema: dict[str, Any]) -> None:
    """Adds the marked response headers, and ``Idempotent-Replayed`` where ``Idempotency-Key`` is
    accepted, to every success response. Operation ids are the route functions' names."""
    marked: dict[str, tuple[str, ...]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            marked[route.name] = getattr(route.endpoint, "response_headers", ())
    for path in schema.get("paths", {}).values():
        for method, operation in path.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            names = marked.get(operation.get("operationId", ""), ())
            idempotent = any(
                param.get("in") == "header" and str(param.get("name", "")).lower() == "idempotency-key"
                for param in operation.get("parameters", [])
            )
            for code, response in operation.get("responses", {}).items():
                if not code.startswith("2") or code == "204" or not (names or idempotent):
                    continue
                headers = response.setdefault("headers", {})
                for name in names:
                    headers[name] = dict(RESPONSE_HEADERS[name])
                if idempotent:
                    headers["Idempotent-Replayed"] = dict(_REPLAYED)


def _nullable(schema: dict[str, Any]) -> bool:
    return any(option.get("type") == "null" for option in schema.get("anyOf", []))


def _object_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The object schema behind a reference or an optional (``anyOf`` with null) reference."""
    options = [option for option in schema.get("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema = options[0]
    while "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def _fill_nulls(example: Any, schema: dict[str, Any], components: dict[str, Any]) -> None:
    schema = _object_schema(schema, components)
    if isinstance(example, list):
        for item in example:
            _fill_nulls(item, schema.get("items", {}), components)
        return
    if not isinstance(example, dict):
        return
    properties = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in example and _nullable(properties.get(name, {})):
            example[name] = None
    for name, value in example.items():
        if name in properties:
            _fill_nulls(value, properties[name], components)


def restore_example_nulls(schema: dict[str, Any]) -> None:
    """FastAPI drops ``None`` from the whole document, examples included; puts back ``null`` for
    each required nullable property an example lacks, nested objects too, so it stays valid."""
    components = schema.get("components", {}).get("schemas", {})
    for component in components.values():
        for example in component.get("examples", []):
            _fill_nulls(example, component, components)


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
            document_headers(app, schema)
            restore_example_nulls(schema)
        return schema

    app.openapi = with_problems  # type: ignore[method-assign]
