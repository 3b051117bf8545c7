from __future__ import annotations

from fastapi import FastAPI

from case_api import __version__
from case_api.api import api_router
from case_api.config import Settings, get_settings
from case_api.consumer import make_handler
from case_api.market.web import router as market_pages
from case_api.models import CaseOutbox
from case_api.notices.agreements import AgreementApi
from case_api.organizations.service import FactsCache
from case_api.persons.crypto import IdentityVault
from shared.app import Consumer, ServiceParts, build_app
from shared.bus import MessageBus

DESCRIPTION = """
An inmate's reintegration case: release plan and release-date history, responsible municipality,
the reintegration domains, the responsibility group (*ansvarsgruppe*) and its meetings, consent,
and the service market (*servicetorg*).

Errors are RFC 9457 `application/problem+json`. Every route under `/api/v1` needs a bearer JWT.
"""


def create_app(settings: Settings | None = None, *, bus: MessageBus | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def build_vault(app: FastAPI) -> None:
        app.state.organization_facts = FactsCache()
        app.state.identity_vault = IdentityVault(
            hash_key=settings.identity_hash_key, encryption_keys=settings.identity_encryption_keys
        )

    async def open_agreement_api(app: FastAPI) -> None:
        # Replaceable on app.state, so tests can point it at an in-process agreement-api.
        app.state.agreement_api = AgreementApi(
            settings.agreement_api_url, settings.bearer_token(), timeout=settings.http_timeout_seconds
        )

    async def close_agreement_api(app: FastAPI) -> None:
        agreement_api: AgreementApi | None = getattr(app.state, "agreement_api", None)
        if agreement_api is not None:
            await agreement_api.aclose()

    parts = ServiceParts(
        name="case-api",
        title="case-api",
        description=DESCRIPTION,
        version=__version__,
        api_router=api_router,
        extra_routers=[market_pages],
        outbox_model=CaseOutbox,
        on_startup=[build_vault, open_agreement_api],
        on_shutdown=[close_agreement_api],
        consumer=Consumer(
            queue=settings.queue,
            binding_keys=settings.binding_keys,
            make_handler=lambda app: make_handler(app.state.sessionmaker, app.state.organization_facts),
        ),
        openapi_tags=[
            {"name": "persons", "description": "Inmates, registered once; identity numbers only in bodies."},
            {"name": "cases", "description": "Cases: lifecycle, transfers, lists with filters."},
            {"name": "release_dates", "description": "Release dates of each kind and their history."},
            {"name": "municipalities", "description": "The municipality responsible after release."},
            {
                "name": "domains",
                "description": "Reintegration domains (housing, income, health, ...) and actions.",
            },
            {"name": "group", "description": "The responsibility group (ansvarsgruppe) and its meetings."},
            {"name": "consents", "description": "Consent, its withdrawal and the disclosure check."},
            {"name": "readiness", "description": "How ready a case is for release, domain by domain."},
            {"name": "audit", "description": "A case's timeline and the access log of its personal data."},
            {
                "name": "notices",
                "description": "What notices say about a case, and the detail view a notice links to.",
            },
            {
                "name": "market",
                "description": "The service market (servicetorg): sessions, bookings, day list.",
            },
        ],
    )
    return build_app(settings, parts, bus=bus)
