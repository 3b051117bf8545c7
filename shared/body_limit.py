"""The request body limit: 413 problem+json for a body over ``*_MAX_BODY_BYTES``, before it is read whole.

:class:`BodyLimitMiddleware` sits inside the logging and metrics middleware and outside routing,
so it runs before any dependency, authentication included. docs/architecture.md, "Request body
limit", says why it is not FastAPI's own ``max_body_size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PROBLEM_MEDIA_TYPE, problem_response

TITLE = "Content Too Large"


class ContentTooLarge(StarletteHTTPException):
    """Raised by the limited ``receive``. An HTTPException, so FastAPI's body parsing passes it on
    instead of answering 400, and the app's handler renders it."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes")
        self.limit = limit


def too_large_response(request: Request, limit: int) -> JSONResponse:
    # Connection: close, so the server stops reading the rest of the body instead of draining it.
    return problem_response(
        request,
        status=413,
        title=TITLE,
        type_slug="content-too-large",
        detail=f"The request body is larger than {limit} bytes",
        headers={"Connection": "close"},
        extensions={"max_body_bytes": limit},
    )


async def _handle_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ContentTooLarge)
    return too_large_response(request, exc.limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _chunked(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" for name, _ in scope.get("headers") or [])


class BodyLimitMiddleware:
    """Refuses a declared Content-Length over the limit without calling the app, and counts the
    bytes the app receives, raising :class:`ContentTooLarge` at the first chunk past the limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await too_large_response(Request(scope), self.max_bytes)(scope, receive, send)
            return
        chunked = _chunked(scope)
        received = 0
        body_done = False
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done, refused
            if refused:
                raise ContentTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    refused = True
                    raise ContentTooLarge(self.max_bytes)
            return message

        async def checked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if chunked and not body_done:
                    # Answered (401, say) before the chunked body was read: close rather than let
                    # the server drain a body of any length to keep the connection.
                    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, checked_send)
        except ContentTooLarge:
            # Only when no exception handler of the app rendered it (the services' apps do).
            if started:
                raise
            await too_large_response(Request(scope), self.max_bytes)(scope, receive, send)


def _document_413(app: FastAPI, openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    def with_413() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = openapi()
        if fresh:
            document_body_limit(schema)
        return schema

    return with_413


def document_body_limit(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the 413 to every operation of an OpenAPI document that takes a request body."""
    problem = "ProblemDetail" in schema.get("components", {}).get("schemas", {})
    too_large = {
        "description": f"{TITLE}: the body is over the service's limit (`*_MAX_BODY_BYTES`)",
        "content": {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}} if problem else {}
        },
    }
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation.setdefault("responses", {}).setdefault("413", too_large)
    return schema


def install_body_limit(app: FastAPI, max_bytes: int) -> None:
    """Before the other middleware is added, so the limit runs inside them (correlation id, log
    line and metrics for the 413) and outside routing and authentication."""
    app.add_exception_handler(ContentTooLarge, _handle_too_large)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_bytes)
    app.openapi = _document_413(app, app.openapi)  # type: ignore[method-assign]
