"""An agreement's lifecycle.

    draft -> negotiating -> signed -> active -> under_review -> active | expired | terminated
    draft | negotiating | signed | active -> terminated;  active -> expired

Content changes in place while the agreement is a draft or under negotiation; once it is active
(or under review) every change makes a new frozen version. A signed agreement waits for
activation and does not change; expired and terminated agreements are final.
"""

from __future__ import annotations

from agreement_api.agreements.errors import IllegalTransition
from agreement_api.agreements.models import AgreementStatus as S

TRANSITIONS: dict[S, tuple[S, ...]] = {
    S.DRAFT: (S.NEGOTIATING, S.TERMINATED),
    S.NEGOTIATING: (S.SIGNED, S.TERMINATED),
    S.SIGNED: (S.ACTIVE, S.TERMINATED),
    S.ACTIVE: (S.UNDER_REVIEW, S.EXPIRED, S.TERMINATED),
    S.UNDER_REVIEW: (S.ACTIVE, S.EXPIRED, S.TERMINATED),
    S.EXPIRED: (),
    S.TERMINATED: (),
}

EDITABLE_IN_PLACE = frozenset({S.DRAFT, S.NEGOTIATING})
"""Statuses where fields and rules change in place."""

VERSIONED = frozenset({S.ACTIVE, S.UNDER_REVIEW})
"""Statuses where a change makes a new agreement version."""

BINDING = frozenset({S.SIGNED, S.ACTIVE, S.UNDER_REVIEW})
"""Statuses in which two agreements for the same parties may not overlap in time."""


def allowed_next(status: S) -> list[S]:
    return list(TRANSITIONS[status])


def check_transition(current: S, target: S) -> None:
    """409 listing ``allowed_next`` unless ``current -> target`` is a legal move."""
    allowed = allowed_next(current)
    if target not in allowed:
        raise IllegalTransition(
            f"An agreement cannot move from {current.value} to {target.value}",
            allowed_next=[status.value for status in allowed],
            field="status",
        )
