"""Service-wide dependencies for case-api."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from case_api.models import CaseIdempotency
from case_api.persons.crypto import IdentityVault
from shared.idempotency import Idempotency, idempotency_dependency

IdempotencyDep = Annotated[Idempotency, Depends(idempotency_dependency(CaseIdempotency))]


def get_vault(request: Request) -> IdentityVault:
    vault: IdentityVault = request.app.state.identity_vault
    return vault


VaultDep = Annotated[IdentityVault, Depends(get_vault)]
