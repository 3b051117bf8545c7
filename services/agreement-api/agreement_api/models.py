"""agreement-api's tables. Imported by migrations/env.py; never reads settings at import."""

from __future__ import annotations

from agreement_api.organizations.models import NavServiceArea, Organization
from shared.idempotency import idempotency_model
from shared.outbox import inbox_model, outbox_model

AgreementOutbox = outbox_model("agreement", __name__)
AgreementInbox = inbox_model("agreement", __name__)
AgreementIdempotency = idempotency_model("agreement", __name__)

__all__ = ["AgreementIdempotency", "AgreementInbox", "AgreementOutbox", "NavServiceArea", "Organization"]
