from __future__ import annotations

from fastapi import FastAPI

from agreement_api import __version__
from agreement_api.api import api_router
from agreement_api.config import Settings, get_settings
from agreement_api.consumer import make_handler
from agreement_api.models import AgreementOutbox
from shared.app import Consumer, ServiceParts, build_app
from shared.bus import MessageBus

DESCRIPTION = """
Who must be told what, and when: the organization directory (prisons and units, regions,
municipalities by *kommunenummer*, NAV offices, health trusts, counties, NGOs), cooperation
agreements (*samarbeidsavtaler*) with notice rules and data-sharing profiles, and webhook endpoints.

Errors are RFC 9457 `application/problem+json`. Every route under `/api/v1` needs a bearer JWT.
"""


def create_app(settings: Settings | None = None, *, bus: MessageBus | None = None) -> FastAPI:
    settings = settings or get_settings()
    parts = ServiceParts(
        name="agreement-api",
        title="agreement-api",
        description=DESCRIPTION,
        version=__version__,
        api_router=api_router,
        outbox_model=AgreementOutbox,
        consumer=Consumer(
            queue=settings.queue,
            binding_keys=settings.binding_keys,
            make_handler=lambda app: make_handler(app.state.sessionmaker),
        ),
        openapi_tags=[
            {"name": "organizations", "description": "The organization directory."},
            {"name": "agreements", "description": "Cooperation agreements, their versions and notice rules."},
            {
                "name": "resolution",
                "description": "Who is told what for a case; where agreements are missing.",
            },
            {"name": "webhooks", "description": "Webhook endpoints and their signing keys."},
        ],
    )
    return build_app(settings, parts, bus=bus)
