"""case-api's tables. Imported by migrations/env.py; never reads settings at import."""

from __future__ import annotations

from shared.outbox import inbox_model, outbox_model

CaseOutbox = outbox_model("case", __name__)
CaseInbox = inbox_model("case", __name__)
