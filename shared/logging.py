"""structlog configured once for every service.

JSON lines in production and readable lines in development; uvicorn's and SQLAlchemy's stdlib
loggers are routed through the same formatter; a correlation id is bound per request (from
``X-Request-ID`` or a new one) and per consumed message; anything shaped like a Norwegian
national identity number (:func:`shared.identifiers.mask_identity_numbers`) is masked before a
line is written.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.context import correlation_id_var, is_correlation_id, new_correlation_id
from shared.identifiers import NIN_MASK, is_valid_national_identity_number, mask_identity_numbers
from shared.metrics import route_template


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_identity_numbers(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and 10_000_000_000 <= abs(value) <= 99_999_999_999:
        return NIN_MASK
    if (
        isinstance(value, int)
        and 0 <= value < 10_000_000_000
        and is_valid_national_identity_number(f"{value:011d}")
    ):
        return NIN_MASK  # a number born on days 1-9 loses its leading zero as an int
    if isinstance(value, Mapping):
        return {_mask(key): _mask(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_mask(item) for item in value]
    return value


def mask_identity_numbers_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask national identity numbers anywhere in the event."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _mask(value)
    return event_dict


def _mask_rendered(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Exception text is rendered late (format_exc_info); mask it too.
    if isinstance(event_dict.get("exception"), str):
        event_dict["exception"] = mask_identity_numbers(event_dict["exception"])
    return event_dict


def _drop_color_message(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn passes an ANSI-coloured copy of its message as an "extra"; it is noise in a log line.
    event_dict.pop("color_message", None)
    return event_dict


def _add_correlation_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if "correlation_id" not in event_dict and (cid := correlation_id_var.get()):
        event_dict["correlation_id"] = cid
    return event_dict


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is at the time of the call (test capture, redirection)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


_configured: tuple[str, bool] | None = None


def configure_logging(*, level: str = "INFO", json: bool = False) -> None:
    """Configure structlog and the stdlib root logger (idempotent for the same arguments)."""
    global _configured
    if _configured == (level.upper(), json):
        return
    _configured = (level.upper(), json)

    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation_id,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _drop_color_message,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        mask_identity_numbers_processor,
    ]
    renderer: Any
    if json:
        final: list[Any] = [structlog.processors.format_exc_info, _mask_rendered]
        renderer = structlog.processors.JSONRenderer()
    else:
        final = []
        renderer = structlog.dev.ConsoleRenderer(colors=False)

    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "structlog": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "foreign_pre_chain": shared_processors,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        *final,
                        renderer,
                    ],
                }
            },
            "handlers": {
                "default": {"()": StderrHandler, "formatter": "structlog"},
            },
            "root": {"handlers": ["default"], "level": level.upper()},
            "loggers": {
                # uvicorn installs its own handlers unless told otherwise: send everything to root.
                # NOTSET: an earlier uvicorn.Config in the same process may have set its own level.
                "uvicorn": {"handlers": [], "propagate": True, "level": "NOTSET"},
                "uvicorn.error": {"handlers": [], "propagate": True, "level": "NOTSET"},
                # One structured http.request line per request comes from our middleware instead.
                "uvicorn.access": {"handlers": [], "propagate": False},
                "sqlalchemy.engine": {"level": "WARNING"},
                "aiormq": {"level": "WARNING"},
                "aio_pika": {"level": "WARNING"},
                "httpx": {"level": "WARNING"},
            },
        }
    )
    structlog.configure(
        # filter_by_level first: a line below the level is dropped before the processors build
        # it (timestamp, masking), not after; at WARNING that is every request's http.request line.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


REQUEST_ID_HEADER = b"x-request-id"


class RequestContextMiddleware:
    """Pure ASGI middleware: correlation id per request, one ``http.request`` log line.

    It also turns an exception that escapes the app into a problem+json 500 here, so the body
    carries the request's correlation id and no traceback ever reaches the client.
    """

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self.log = structlog.get_logger("http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(REQUEST_ID_HEADER, b"").decode("latin-1")
        # Anything but the services' own format is replaced, not trusted: it would be echoed and stored.
        correlation_id = incoming if is_correlation_id(incoming) else new_correlation_id()
        token = correlation_id_var.set(correlation_id)
        status = 500
        started = False
        begin = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, correlation_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            self.log.error(
                "http.unhandled_error",
                service=self.service,
                path=scope.get("path"),
                error_class=type(exc).__name__,
                exc_info=exc,
            )
            if started:
                raise
            await _send_internal_error(scope, send_with_id)
        finally:
            self.log.info(
                "http.request",
                service=self.service,
                method=scope.get("method"),
                path=route_template(scope) or scope.get("path"),
                status=status,
                duration_ms=round((time.perf_counter() - begin) * 1000, 2),
            )
            correlation_id_var.reset(token)


async def _send_internal_error(scope: Scope, send: Send) -> None:
    import json as _json

    from shared.errors import PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE, problem_instance

    body = _json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + "internal-error",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "An unexpected error occurred.",
            "instance": problem_instance(str(scope.get("path", ""))),
            "correlation_id": correlation_id_var.get(),
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
