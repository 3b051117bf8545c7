"""Service-wide dependencies for agreement-api."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from agreement_api.models import AgreementIdempotency
from shared.idempotency import Idempotency, idempotency_dependency

IdempotencyDep = Annotated[Idempotency, Depends(idempotency_dependency(AgreementIdempotency))]
