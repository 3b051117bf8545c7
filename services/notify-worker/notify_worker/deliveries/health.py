"""Webhook endpoint health: since when an endpoint fails, and disabling it when it is gone or has
failed for too long (docs/notices.md, "Endpoint health").

After every recorded attempt, in the attempt's transaction, :func:`record_attempt` updates
``notify_endpoint_health``: a success clears ``failing_since``, a failure sets it if it was empty.
It answers whether the endpoint should now be disabled: at once after a 410 (``gone``) or a URL
the worker's policy refused at send time (``url_refused``), or when a failure comes
``failure_period`` or more after ``failing_since`` (``sustained_failure``).

Disabling (:func:`disable`) asks agreement-api first, after the attempt's commit and outside any
transaction; only when agreement-api has it disabled are ``disabled_at`` and the alert
``notice.endpoint_disabled.v1`` written, with the endpoint's pending deliveries ended as ``dead``
(``endpoint_disabled``) so their notices end too. When agreement-api cannot be reached nothing is
written, and every dispatcher round asks again (:func:`pending_disables`). An endpoint is disabled
once: a second worker deciding the same finds ``disabled_at`` set and emits nothing.

When agreement-api lists the endpoint as active again after the worker disabled it (a person
enabled it), :func:`seen_active` starts its health over.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from notify_worker import metrics
from notify_worker.clients import EndpointPort, UpstreamError
from notify_worker.deliveries.models import DeliveryState, NotifyDelivery, NotifyEndpointHealth
from notify_worker.notices.events import emit
from shared.contracts import events as contracts
from shared.db import insert_ignoring_conflicts, table_of, unit_of_work, utcnow

log = structlog.get_logger("notify_worker.health")

GONE = "gone"
URL_REFUSED = "url_refused"  # also the attempt's error class (notify_worker.deliveries.sender)
SUSTAINED_FAILURE = "sustained_failure"
ENDPOINT_DISABLED = "endpoint_disabled"  # last_error_class of deliveries ended by a disable

ENDPOINT_UNAVAILABLE = "endpoint_unavailable"  # agreement-api could not say where the endpoint is now

# Attempts that never reached the receiver say nothing about its health.
NOT_THE_RECEIVERS_DOING = frozenset({"signing_keys_unavailable", "no_signing_key", ENDPOINT_UNAVAILABLE})

# A success only rewrites a healthy endpoint's row this often: under load every attempt would
# otherwise update (and lock) the same row.
SUCCESS_RESOLUTION = timedelta(seconds=1)

# Endpoints this process has seen a health row of. Rows are never deleted, so a success of a known
# endpoint whose row needed no update costs one statement, not two.
_HAVE_ROWS: set[uuid.UUID] = set()


def counts_for_health(error_class: str | None) -> bool:
    return error_class not in NOT_THE_RECEIVERS_DOING


async def record_attempt(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID,
    organization_id: uuid.UUID,
    at: datetime,
    succeeded: bool,
    status_code: int | None,
    failure_period: timedelta | None,
    error_class: str | None,
) -> str | None:
    """Note one attempt's outcome; the reason to disable the endpoint now, or None."""
    if succeeded:
        await _record_success(session, endpoint_id=endpoint_id, organization_id=organization_id, at=at)
        return None
    health = await _locked_row(session, endpoint_id=endpoint_id, organization_id=organization_id, at=at)
    # Attempts of several workers may be recorded out of order: a success seen later than this
    # failure's moment means the endpoint was not failing since then.
    if health.failing_since is None and (health.last_success_at is None or health.last_success_at <= at):
        health.failing_since = at
    if health.last_failure_at is None or health.last_failure_at < at:
        health.last_failure_at = at
    health.updated_at = max(health.updated_at, at)
    permanent = GONE if status_code == 410 else URL_REFUSED if error_class == URL_REFUSED else None
    return disable_reason(health, permanent=permanent, failure_period=failure_period)


def disable_reason(
    health: NotifyEndpointHealth, *, permanent: str | None, failure_period: timedelta | None
) -> str | None:
    """Whether a failing endpoint should be disabled, and why (``permanent``: the reason of a
    permanent failure just seen, ``gone`` or ``url_refused``); None while it may keep trying."""
    if health.disabled_at is not None or health.failing_since is None:
        return None
    if permanent is not None:
        return permanent
    if (
        failure_period is not None
        and health.last_failure_at is not None
        and health.last_failure_at - health.failing_since >= failure_period
    ):
        return SUSTAINED_FAILURE
    return None


async def _record_success(
    session: AsyncSession, *, endpoint_id: uuid.UUID, organization_id: uuid.UUID, at: datetime
) -> None:
    # No lock and no write while the row already says healthy and recently successful.
    result = await session.execute(
        update(NotifyEndpointHealth)
        .where(
            col(NotifyEndpointHealth.endpoint_id) == endpoint_id,
            (col(NotifyEndpointHealth.failing_since).is_not(None))
            | (col(NotifyEndpointHealth.last_success_at).is_(None))
            | (col(NotifyEndpointHealth.last_success_at) < at - SUCCESS_RESOLUTION),
            # A failure recorded for a later moment stands (attempts of several workers).
            (col(NotifyEndpointHealth.last_failure_at).is_(None))
            | (col(NotifyEndpointHealth.last_failure_at) <= at),
        )
        .values(failing_since=None, last_success_at=at, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) > 0:
        _HAVE_ROWS.add(endpoint_id)  # an update found the row: it exists beyond this transaction
    elif endpoint_id not in _HAVE_ROWS:
        # Not remembered only after a row was seen, so a rolled-back insert is not taken for one.
        await session.execute(
            _insert_new(
                session,
                endpoint_id=endpoint_id,
                organization_id=organization_id,
                last_success_at=at,
                updated_at=at,
            )
        )


async def record_successes(
    session: AsyncSession, successes: Sequence[tuple[uuid.UUID, uuid.UUID, datetime]]
) -> None:
    """Note a chunk's successful attempts (endpoint, organization, moment): each endpoint's latest,
    in endpoint order. Rows this process knows are updated by one executemany statement."""
    latest: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
    for endpoint_id, organization_id, at in successes:
        if endpoint_id not in latest or latest[endpoint_id][1] < at:
            latest[endpoint_id] = (organization_id, at)
    ordered = sorted(latest.items())
    if any(endpoint_id not in _HAVE_ROWS for endpoint_id, _ in ordered):
        for endpoint_id, (organization_id, at) in ordered:
            await _record_success(session, endpoint_id=endpoint_id, organization_id=organization_id, at=at)
        return
    await session.execute(
        _SUCCESS_UPDATE,
        [
            {"e_id": endpoint_id, "at": at, "stale_before": at - SUCCESS_RESOLUTION}
            for endpoint_id, (_, at) in ordered
        ],
    )


_HEALTH = table_of(NotifyEndpointHealth).c
# _record_success's UPDATE for many rows (executemany): no lock and no write while a row already
# says healthy and recently successful, and a failure recorded for a later moment stands.
_SUCCESS_UPDATE = (
    update(table_of(NotifyEndpointHealth))
    .where(
        _HEALTH.endpoint_id == bindparam("e_id"),
        _HEALTH.failing_since.is_not(None)
        | _HEALTH.last_success_at.is_(None)
        | (_HEALTH.last_success_at < bindparam("stale_before")),
        _HEALTH.last_failure_at.is_(None) | (_HEALTH.last_failure_at <= bindparam("at")),
    )
    .values(failing_since=None, last_success_at=bindparam("at"), updated_at=bindparam("at"))
)


async def _locked_row(
    session: AsyncSession, *, endpoint_id: uuid.UUID, organization_id: uuid.UUID, at: datetime
) -> NotifyEndpointHealth:
    """The endpoint's health row, created if missing, locked for this transaction."""
    if endpoint_id not in _HAVE_ROWS:
        await session.execute(
            _insert_new(session, endpoint_id=endpoint_id, organization_id=organization_id, updated_at=at)
        )
    health = await session.get(
        NotifyEndpointHealth, endpoint_id, with_for_update=True, populate_existing=True
    )
    if health is None:  # the row this process saw went with a rolled-back transaction
        _HAVE_ROWS.discard(endpoint_id)
        return await _locked_row(session, endpoint_id=endpoint_id, organization_id=organization_id, at=at)
    _HAVE_ROWS.add(endpoint_id)
    return health


def _insert_new(session: AsyncSession, **values: Any) -> Any:
    """INSERT a health row unless the endpoint has one."""
    return insert_ignoring_conflicts(session, NotifyEndpointHealth, values, key=["endpoint_id"])


@dataclass(frozen=True)
class Disable:
    endpoint_id: uuid.UUID
    reason: str


async def pending_disables(
    session: AsyncSession, *, failure_period: timedelta | None, limit: int
) -> list[Disable]:
    """Endpoints the worker decided to disable but could not yet (agreement-api was unreachable).

    Failing endpoints are few (one health row per endpoint), so this is cheap every round."""
    failing = (
        (
            await session.execute(
                select(NotifyEndpointHealth)
                .where(
                    col(NotifyEndpointHealth.disabled_at).is_(None),
                    col(NotifyEndpointHealth.failing_since).is_not(None),
                )
                .order_by(col(NotifyEndpointHealth.failing_since))
            )
        )
        .scalars()
        .all()
    )
    due: list[Disable] = []
    for health in failing:
        assert health.failing_since is not None
        # A delivery that failed permanently since: its error class says why (410 or a refused URL).
        permanent = await session.scalar(
            select(col(NotifyDelivery.last_error_class))
            .where(
                col(NotifyDelivery.endpoint_id) == health.endpoint_id,
                col(NotifyDelivery.state) == DeliveryState.FAILED_PERMANENTLY,
                col(NotifyDelivery.ended_at) >= health.failing_since,
            )
            .order_by(col(NotifyDelivery.ended_at).desc())
            .limit(1)
        )
        reason = disable_reason(
            health,
            permanent=None if permanent is None else URL_REFUSED if permanent == URL_REFUSED else GONE,
            failure_period=failure_period,
        )
        if reason is not None:
            due.append(Disable(health.endpoint_id, reason))
            if len(due) >= limit:
                break
    return due


async def disable(
    sessionmaker: async_sessionmaker[AsyncSession],
    endpoints: EndpointPort,
    *,
    endpoint_id: uuid.UUID,
    reason: str,
    now: datetime,
) -> bool:
    """Disable the endpoint in agreement-api, then record it, alert and end its pending deliveries.

    False when agreement-api could not be reached (tried again next round) or another worker
    already did it."""
    try:
        known = await endpoints.disable_endpoint(endpoint_id, reason)
    except (UpstreamError, httpx.HTTPError, ValueError) as exc:
        log.warning(
            "endpoint_health.disable_failed", endpoint_id=str(endpoint_id), reason=reason, error=str(exc)
        )
        return False
    if not known:
        # agreement-api no longer knows it: nothing can be sent there either.
        log.warning("endpoint_health.endpoint_unknown", endpoint_id=str(endpoint_id))
    async with unit_of_work(sessionmaker) as session:
        health = await session.get(
            NotifyEndpointHealth, endpoint_id, with_for_update=True, populate_existing=True
        )
        if health is None or health.disabled_at is not None:
            return False
        moment = max(now, utcnow())
        health.disabled_at = moment
        health.disabled_reason = reason
        health.updated_at = moment
        alert = contracts.NoticeEndpointDisabled.model_validate(
            {
                "endpoint_id": endpoint_id,
                "organization_id": health.organization_id,
                "reason": reason,
                "failing_since": health.failing_since,
            }
        )
        emit(session, alert, subject=f"webhook/{endpoint_id}")
        ended = await end_pending_deliveries(session, endpoint_id=endpoint_id, now=moment)
    metrics.ENDPOINTS_DISABLED.labels(reason).inc()
    if ended:
        metrics.count_outcome(DeliveryState.DEAD, ENDPOINT_DISABLED, ended)
    log.warning(
        "endpoint_health.disabled", endpoint_id=str(endpoint_id), reason=reason, deliveries_ended=ended
    )
    return True


async def end_pending_deliveries(session: AsyncSession, *, endpoint_id: uuid.UUID, now: datetime) -> int:
    """End the endpoint's pending deliveries as dead (``endpoint_disabled``); how many.

    Their notices then end as well (delivered if another endpoint succeeded, else dead) and an
    operator can redeliver them once the endpoint works again."""
    result = await session.execute(
        update(NotifyDelivery)
        .where(
            col(NotifyDelivery.endpoint_id) == endpoint_id, col(NotifyDelivery.state) == DeliveryState.PENDING
        )
        .values(state=DeliveryState.DEAD, last_error_class=ENDPOINT_DISABLED, ended_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def seen_active(session: AsyncSession, endpoint_ids: Iterable[uuid.UUID], *, asked_at: datetime) -> int:
    """agreement-api listed these endpoints as active at ``asked_at``: one the worker disabled before
    then was enabled again by a person, so its health starts over. How many started over."""
    ids = list(endpoint_ids)
    if not ids:
        return 0
    result = await session.execute(
        update(NotifyEndpointHealth)
        .where(
            col(NotifyEndpointHealth.endpoint_id).in_(ids),
            col(NotifyEndpointHealth.disabled_at).is_not(None),
            col(NotifyEndpointHealth.disabled_at) < asked_at,
        )
        .values(disabled_at=None, disabled_reason=None, failing_since=None, updated_at=asked_at)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
